"""Precision modes on CPU: tf32 computes exactly fp32 there, bf16 is the autocast path, the CUDA TF32
flags are scoped and restored, the default-picking rule, the fidelity measure, and the benchmark's smoke run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from ft_artifacts.errors import ObjectiveError
from ft_artifacts.hooks import activations
from ft_artifacts.naming import Neuron
from ft_artifacts.objectives import group, neuron
from ft_artifacts.optimize import OptimConfig, optimize
from ft_artifacts.precision import (CPU_DEFAULT, GPU_DEFAULT, PRECISIONS, choose_default, compare, default_precision,
                                    preferred, step_context, tf32_flags, tf32_state, vocabulary_keys)
from ft_artifacts.precision import _set_tf32, deterministic

OBJECTIVES = [neuron(Neuron(1, 3)), group([Neuron(1, 2), Neuron(3, 5), Neuron(2, 7)], "g"), neuron(Neuron(3, 0))]
CONFIG = OptimConfig(steps=5, lr=1.0, trace_every=1)


@pytest.fixture
def saved_flags():
    saved = tf32_state()
    yield saved
    _set_tf32(saved)


def flags():
    return tf32_state()


def test_modes_and_defaults():
    assert PRECISIONS == ("fp32", "tf32", "bf16")
    assert default_precision("cpu") == CPU_DEFAULT == "fp32"
    assert default_precision(torch.device("cuda:1")) == GPU_DEFAULT == "fp32"  # until measured on a GPU


def test_tf32_on_cpu_computes_exactly_fp32(tiny):
    fp32 = optimize(tiny, OBJECTIVES, CONFIG, precision="fp32")
    tf32 = optimize(tiny, OBJECTIVES, CONFIG, precision="tf32")
    assert (fp32.precision, tf32.precision) == ("fp32", "tf32")
    for name in ("pre_ln", "analysis", "activation", "trace", "grad_sum"):
        assert torch.equal(getattr(fp32, name), getattr(tf32, name)), name


def test_bf16_is_the_autocast_path_and_final_values_are_float32(tiny):
    new = optimize(tiny, OBJECTIVES, CONFIG, precision="bf16")
    old = optimize(tiny, OBJECTIVES, CONFIG, autocast_dtype=torch.bfloat16)
    fp32 = optimize(tiny, OBJECTIVES, CONFIG)
    assert torch.equal(new.trace, old.trace) and torch.equal(new.activation, old.activation)
    assert not torch.equal(new.trace, fp32.trace)  # the steps really ran in bfloat16
    # the final activation is the float32 objective of the final iterate, not a bf16 evaluation
    with torch.no_grad():
        _, acts = activations(tiny, new.pre_ln)
    expected = torch.stack([obj(acts[j], tiny.hidden_size) for j, obj in enumerate(OBJECTIVES)])
    assert new.activation.dtype == torch.float32
    torch.testing.assert_close(new.activation, expected, rtol=1e-5, atol=1e-5)


def test_preferred_mode_applies_where_none_is_named(tiny):
    with preferred("bf16"):
        assert default_precision("cpu") == "bf16"
        assert optimize(tiny, OBJECTIVES[:1], CONFIG).precision == "bf16"
        assert optimize(tiny, OBJECTIVES[:1], CONFIG, precision="fp32").precision == "fp32"
        with preferred(None):
            assert default_precision("cpu") == "fp32"
    assert default_precision("cpu") == "fp32"


@pytest.mark.parametrize("call, match", [
    (dict(precision="fp16"), "unknown precision"),
    (dict(autocast_dtype=torch.float16), "not supported"),
    (dict(precision="tf32", autocast_dtype=torch.bfloat16), "contradicts"),
])
def test_bad_modes_are_refused(tiny, call, match):
    with pytest.raises(ObjectiveError, match=match):
        optimize(tiny, OBJECTIVES, CONFIG, **call)


def test_tf32_flags_are_scoped_to_cuda_and_restored(saved_flags):
    """The CUDA branch, driven on CPU: the switches exist in CPU builds of torch."""
    _set_tf32(("ieee", "tf32"))
    with tf32_flags(True, "cpu"):
        assert flags() == ("ieee", "tf32")  # a no-op off CUDA
    with tf32_flags(True, torch.device("cuda")):
        assert flags() == ("tf32", "tf32")
    assert flags() == ("ieee", "tf32")
    with pytest.raises(RuntimeError, match="boom"):
        with tf32_flags(False, "cuda:0"):
            assert flags() == ("ieee", "ieee")
            raise RuntimeError("boom")
    assert flags() == ("ieee", "tf32")  # restored on error too


def test_fp32_mode_turns_tf32_off_for_its_steps(saved_flags):
    _set_tf32(("tf32", "tf32"))
    flag_ctx, cast = step_context("fp32", "cuda")
    with flag_ctx, cast:
        assert flags() == ("ieee", "ieee")
    assert flags() == ("tf32", "tf32")
    flag_ctx, cast = step_context("bf16", "cpu")
    assert isinstance(cast, torch.autocast)
    _, cast64 = step_context("bf16", "cpu", torch.float64)
    assert not isinstance(cast64, torch.autocast)  # a float64 model is never autocast


# What a notebook may have done before textualizing, and what it reads back afterwards to check that
# it got its own settings back (each in a fresh process: these settings are process-wide and sticky).
NOTEBOOKS = {
    "nothing": ("", "(torch.backends.cuda.matmul.fp32_precision, torch.get_float32_matmul_precision())"),
    "set_float32_matmul_precision": ("torch.set_float32_matmul_precision('high')",
                                     "(torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision)"),
    "fp32_precision": ("torch.backends.fp32_precision = 'tf32'",
                       "(torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision)"),
    "legacy": ("torch.backends.cuda.matmul.allow_tf32 = True; torch.backends.cudnn.allow_tf32 = False",
               "(torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)"),
}
NOTEBOOK = """
import json, sys, torch
{setup}
from ft_artifacts.model import load_model
from ft_artifacts.naming import Neuron
from ft_artifacts.objectives import neuron
from ft_artifacts.optimize import OptimConfig, optimize
from ft_artifacts.precision import PRECISIONS, step_context, tf32_state
before = {read}
lm = load_model(sys.argv[1])
inside, rows = {{}}, {{}}
for mode in PRECISIONS:
    with step_context(mode, "cuda")[0]:  # the CUDA branch, as optimize enters it on a GPU
        inside[mode] = tf32_state()
    rows[mode] = optimize(lm, [neuron(Neuron(1, 3))], OptimConfig(steps=3, lr=1.0), precision=mode).activation.tolist()
after = {read}
print(json.dumps({{"before": before, "after": after, "inside": inside, "rows": rows}}))
"""


@pytest.mark.parametrize("notebook", sorted(NOTEBOOKS))
def test_precision_flags_work_whatever_the_process_did_before(notebook, tiny_folder):
    import subprocess

    setup, read = NOTEBOOKS[notebook]
    script = NOTEBOOK.format(setup=setup, read=read)
    done = subprocess.run([sys.executable, "-c", script, str(tiny_folder)], capture_output=True, text=True,
                          timeout=120, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["after"] == got["before"]  # the notebook's own settings, read its own way, are back
    assert got["inside"] == {"fp32": ["ieee", "ieee"], "tf32": ["tf32", "tf32"], "bf16": ["ieee", "ieee"]}
    assert all(len(v) == 1 for v in got["rows"].values()) and got["rows"]["tf32"] == got["rows"]["fp32"]


def test_legacy_flags_only_where_torch_has_no_fp32_precision(saved_flags, monkeypatch):
    """A torch without the `fp32_precision` attributes: the legacy flags, saved and restored."""
    import ft_artifacts.precision as precision

    class Legacy:
        allow_tf32 = True

    matmul, cudnn = Legacy(), Legacy()
    cudnn.allow_tf32 = False
    monkeypatch.setattr(precision, "_has_new_api", lambda _matmul: False)
    monkeypatch.setattr(torch.backends.cuda, "matmul", matmul)
    monkeypatch.setattr(torch.backends, "cudnn", cudnn)
    with tf32_flags(False, "cuda"):
        assert (matmul.allow_tf32, cudnn.allow_tf32) == (False, False)
    with tf32_flags(True, "cuda"):
        assert (matmul.allow_tf32, cudnn.allow_tf32) == (True, True)
    assert (matmul.allow_tf32, cudnn.allow_tf32) == (True, False)


def test_deterministic_on_cuda_sets_and_restores(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    assert not torch.are_deterministic_algorithms_enabled()
    with deterministic("cpu"):
        assert not torch.are_deterministic_algorithms_enabled()
    with pytest.raises(RuntimeError, match="boom"):
        with deterministic("cuda:0"):
            assert torch.are_deterministic_algorithms_enabled()
            assert __import__("os").environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
            raise RuntimeError("boom")
    assert not torch.are_deterministic_algorithms_enabled()


def test_choose_default_takes_the_fastest_eligible_mode():
    fast_ok = {"activation_ratio": 0.99, "top10_overlap": 0.9}
    assert choose_default({"fp32": {"seconds_per_step": 3.0}, "tf32": {"seconds_per_step": 2.0, **fast_ok},
                           "bf16": {"seconds_per_step": 1.0, **fast_ok}}) == "bf16"
    low_ratio = {"activation_ratio": 0.97, "top10_overlap": 1.0}
    low_overlap = {"activation_ratio": 1.0, "top10_overlap": 0.79}
    assert choose_default({"fp32": {"seconds_per_step": 3.0}, "tf32": {"seconds_per_step": 2.0, **fast_ok},
                           "bf16": {"seconds_per_step": 1.0, **low_ratio}}) == "tf32"
    assert choose_default({"fp32": {"seconds_per_step": 3.0}, "tf32": {"seconds_per_step": 2.0, **low_overlap},
                           "bf16": {"seconds_per_step": 1.0, **low_ratio}}) == "fp32"
    assert choose_default({"fp32": {"seconds_per_step": 1.0}, "tf32": {"seconds_per_step": 1.0, **fast_ok}}) == "fp32"
    with pytest.raises(ObjectiveError):
        choose_default({"bf16": {"seconds_per_step": 1.0, **low_ratio}})


def test_fidelity_of_a_mode_against_fp32(tiny):
    keys = vocabulary_keys(tiny)
    assert keys.shape == (tiny.vocab_size, tiny.hidden_size)
    fp32 = optimize(tiny, OBJECTIVES, CONFIG)
    same = compare("fp32", fp32, fp32, keys)
    assert (same.activation_ratio, same.top10_overlap, same.max_rel_diff, same.rows) == (1.0, 1.0, 0.0, 3)
    assert same.eligible
    bf16 = compare("bf16", fp32, optimize(tiny, OBJECTIVES, CONFIG, precision="bf16"), keys)
    assert 0.9 < bf16.activation_ratio < 1.1 and 0 < bf16.top10_overlap <= 1
    expected = float(optimize(tiny, OBJECTIVES, CONFIG, precision="bf16").activation.double().mean()
                      / fp32.activation.double().mean())
    assert bf16.activation_ratio == pytest.approx(expected)
    with pytest.raises(ObjectiveError):
        compare("fp32", fp32, optimize(tiny, OBJECTIVES[:2], CONFIG), keys)


def test_build_benchmark_smoke_run(tiny_folder, tmp_path, capsys):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        import build as bench
    finally:
        sys.path.pop(0)
    out = bench.main(["--smoke", "--device", "cpu", "--model", str(tiny_folder), "--threads", "1",
                      "--json", str(tmp_path / "b.json")])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("paper preset: ") and " s on cpu (" in last and last.endswith("x one at a time")
    data = json.loads((tmp_path / "b.json").read_text())
    assert set(data["batched"]) == set(PRECISIONS) and data["chosen"] in PRECISIONS
    assert data["objectives"] == 12 and data["actual"]["steps"] == 3
    assert data["fidelity"]["tf32"]["max_rel_diff"] == 0.0  # tf32 is fp32 on CPU
    assert out["paper_preset"]["x_one_at_a_time"] > 0


def test_one_exact_preconditioner_whatever_the_mode(tiny):
    """E^T E is the float64 product rounded once, the same object for every mode, and computing it first
    inside autocast or inside a TF32 block (the CUDA branch, driven on CPU) changes nothing."""
    from ft_artifacts.optimize import preconditioner

    e64 = tiny.embedding_matrix.detach().double()
    exact = (e64.T @ e64).float()
    tiny.cache.pop("preconditioner", None)
    with tf32_flags(True, "cuda"), torch.autocast("cpu", dtype=torch.bfloat16):
        first = preconditioner(tiny)
    assert first.dtype == torch.float32 and torch.equal(first, exact)
    runs = {mode: optimize(tiny, OBJECTIVES, CONFIG, precision=mode) for mode in ("tf32", "bf16", "fp32")}
    assert preconditioner(tiny) is first
    assert torch.equal(runs["tf32"].trace, optimize(tiny, OBJECTIVES, CONFIG, precision="fp32").trace)


def test_objectives_and_traces_accumulate_in_float32_in_every_mode(tiny):
    """Under bf16 autocast the layers' outputs are bfloat16; the objective summed from them is float32."""
    from ft_artifacts.objectives import compile_objectives

    compiled = compile_objectives(OBJECTIVES, tiny.hidden_size, "cpu")
    torch.manual_seed(0)
    acts = [torch.randn(n, tiny.hidden_size) for n in compiled.active]
    exact = compiled.evaluate([a.double() for a in acts], len(OBJECTIVES))
    low = compiled.evaluate([a.bfloat16() for a in acts], len(OBJECTIVES))
    assert exact.dtype == torch.float64 and low.dtype == torch.float32
    rounded = compiled.evaluate([a.bfloat16().double() for a in acts], len(OBJECTIVES))
    torch.testing.assert_close(low.double(), rounded, rtol=1e-6, atol=1e-6)  # float32 sums, not bfloat16 ones
    bf16 = optimize(tiny, OBJECTIVES, CONFIG, precision="bf16")
    assert bf16.trace.dtype == torch.float32
    assert len({round(v, 6) for v in bf16.trace.flatten().tolist()}) > len(OBJECTIVES)


# Ops torch documents as nondeterministic on CUDA (torch.use_deterministic_algorithms), by aten name,
# including the backward kernels of indexing, gather and embedding lookups.
NONDETERMINISTIC_ON_CUDA = {
    "index_add", "index_add_", "scatter_add", "scatter_add_", "scatter_reduce", "scatter_reduce_", "scatter",
    "scatter_", "put", "put_", "index_copy", "index_copy_", "index_reduce", "index_reduce_", "histc",
    "bincount", "median", "nanmedian", "kthvalue", "mode", "cumsum", "cumsum_", "embedding_dense_backward",
    "_embedding_bag_backward", "_embedding_bag_dense_backward", "nll_loss_forward", "nll_loss2d_forward",
    "_ctc_loss_backward", "grid_sampler_2d_backward", "max_unpool2d", "max_unpool3d", "avg_pool3d_backward",
    "_adaptive_avg_pool2d_backward", "_adaptive_avg_pool3d_backward", "adaptive_max_pool2d_backward",
    "max_pool3d_with_indices_backward", "index_select_backward", "repeat_interleave",
}


def _aten_ops(run) -> set[str]:
    """The aten ops (with index_put's accumulate flag) that `run()` dispatches, forward and backward."""
    from torch.utils._python_dispatch import TorchDispatchMode

    seen: set[str] = set()

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            name = func.overloadpacket.__name__
            if name.startswith(("index_put", "_index_put_impl")):
                accumulate = kwargs.get("accumulate", args[3] if len(args) > 3 else False)
                name += "(accumulate)" if accumulate else ""
            seen.add(name)
            return func(*args, **kwargs)

    with Record():
        run()
    return seen


def test_the_build_path_uses_no_op_nondeterministic_on_cuda(tiny):
    """Every aten op of the optimization (both methods, all modes, forward and backward), the scan, the
    vocabulary statistics and the nearest-token metrics, recorded as it runs: none is on torch's list."""
    from ft_artifacts.metrics import cosine_topk, rank_of
    from ft_artifacts.scan import scan_vocabulary
    from ft_artifacts.textualize import gather_stats, vocab_stats

    def run():
        for mode in PRECISIONS:
            optimize(tiny, OBJECTIVES, CONFIG, precision=mode)
        optimize(tiny, OBJECTIVES, OptimConfig(steps=2, method="plain"))
        scan = scan_vocabulary(tiny, batch_size=50)
        vocab_stats(scan, OBJECTIVES, [None, 5, 7], device=tiny.device)
        gather_stats(torch.from_numpy(scan.acts), OBJECTIVES, [None, 5, 7], tiny.hidden_size)  # the CUDA path
        keys = torch.from_numpy(scan.analysis)
        cosine_topk(keys[:9], keys, 5)
        rank_of(keys[:9], keys, torch.arange(9))

    ops = _aten_ops(run)
    assert {"mm", "addmm", "native_layer_norm"} & ops  # the recorder saw the model run
    bad = {op for op in ops if op in NONDETERMINISTIC_ON_CUDA or op.endswith("(accumulate)")}
    assert not bad, bad


def test_hooks_are_registered_once_per_optimize_call(tiny, monkeypatch):
    import ft_artifacts.hooks as hooks

    calls = []
    real = hooks.capture_dense

    def counting(lm, position):
        calls.append(position)
        return real(lm, position)

    monkeypatch.setattr(hooks, "capture_dense", counting)
    monkeypatch.setattr("ft_artifacts.optimize.capture_dense", counting)
    optimize(tiny, OBJECTIVES, OptimConfig(steps=7, lr=1.0))
    assert calls == [1]
    layer = tiny.model.encoder.layer[0].output.dense
    assert not layer._forward_hooks  # removed after the call


def test_vocab_stats_gathered_on_a_device_equal_the_host_product(tiny):
    """The CUDA path of vocab_stats (member columns gathered on the device), run on a CPU tensor, against
    the host product: same tokens, same values within float32 rounding."""
    import numpy as np

    from ft_artifacts.scan import scan_vocabulary
    from ft_artifacts.textualize import _to_device, gather_stats, vocab_stats

    scan = scan_vocabulary(tiny, batch_size=64)
    rng = np.random.default_rng(3)
    width = tiny.num_neurons
    objectives = [group([Neuron.from_flat(int(i), tiny.hidden_size) for i in rng.choice(width, size, replace=False)],
                        f"g{size}") for size in (2, 7, 20, width)]
    targets = [3, None, 11, 0]
    host = vocab_stats(scan, objectives, targets)
    acts = _to_device(scan.acts.astype(np.float16), "cpu", rows=17)  # float16 storage, copied in blocks
    assert acts.dtype == torch.float32 and acts.shape == scan.acts.shape
    gathered = gather_stats(torch.from_numpy(scan.acts), objectives, targets, tiny.hidden_size)
    assert [g["token"] for g in gathered] == [h["token"] for h in host]
    for g, h in zip(gathered, host):
        assert g.keys() == h.keys() and all(g[k] == pytest.approx(h[k], rel=1e-5, abs=1e-6) for k in g)
