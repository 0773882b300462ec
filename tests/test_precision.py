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
                                    preferred, step_context, tf32_flags, vocabulary_keys)

OBJECTIVES = [neuron(Neuron(1, 3)), group([Neuron(1, 2), Neuron(3, 5), Neuron(2, 7)], "g"), neuron(Neuron(3, 0))]
CONFIG = OptimConfig(steps=5, lr=1.0, trace_every=1)


@pytest.fixture
def saved_flags():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    yield saved
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def flags():
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


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
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = False, True
    with tf32_flags(True, "cpu"):
        assert flags() == (False, True)  # a no-op off CUDA
    with tf32_flags(True, torch.device("cuda")):
        assert flags() == (True, True)
    assert flags() == (False, True)
    with pytest.raises(RuntimeError):
        with tf32_flags(False, "cuda:0"):
            assert flags() == (False, False)
            raise RuntimeError("boom")
    assert flags() == (False, True)  # restored on error too


def test_fp32_mode_turns_tf32_off_for_its_steps(saved_flags):
    torch.backends.cuda.matmul.allow_tf32 = True
    flag_ctx, cast = step_context("fp32", "cuda")
    with flag_ctx, cast:
        assert flags()[0] is False
    assert flags()[0] is True
    flag_ctx, cast = step_context("bf16", "cpu")
    assert isinstance(cast, torch.autocast)
    _, cast64 = step_context("bf16", "cpu", torch.float64)
    assert not isinstance(cast64, torch.autocast)  # a float64 model is never autocast


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
