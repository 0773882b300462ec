"""GPU checks (opt-in: `pytest -m gpu`): the batched engine on CUDA computes what it computes on CPU."""

from __future__ import annotations

import pytest
import torch

from ft_artifacts.model import load_model
from ft_artifacts.naming import Neuron
from ft_artifacts.objectives import group, neuron
from ft_artifacts.optimize import OptimConfig, optimize

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

OBJECTIVES = [neuron(Neuron(1, 3)), neuron(Neuron(6, 200)),
              group([Neuron(2, i) for i in range(0, 300, 7)], "g")]


def test_cuda_matches_cpu_for_a_few_steps():
    config = OptimConfig(steps=5, trace_every=1)
    cpu = optimize(load_model("minilm", device="cpu"), OBJECTIVES, config)
    gpu = optimize(load_model("minilm", device="cuda"), OBJECTIVES, config)
    torch.testing.assert_close(gpu.trace, cpu.trace, rtol=1e-3, atol=1e-3)


def test_bf16_autocast_tracks_float32():
    lm = load_model("minilm", device="cuda")
    config = OptimConfig(steps=50, trace_every=10)
    fp32 = optimize(lm, OBJECTIVES, config)
    bf16 = optimize(lm, OBJECTIVES, config, autocast_dtype=torch.bfloat16)
    assert torch.all(bf16.activation > 0.5 * fp32.activation)
    torch.testing.assert_close(bf16.trace[:, 0], fp32.trace[:, 0], rtol=0.05, atol=0.05)
