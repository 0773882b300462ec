"""Objectives in, optimized inputs out: batched activation maximization, one batch row per objective.

Every step runs one forward and one backward over all rows at once. Rows never interact (each has
its own input and objective): in exact arithmetic a row's result does not depend on what it is batched
with. In float32 the batched kernels round differently, so a row optimized in another batch drifts a
little (measured in the README, benchmarks/batching.py); the same rows in the same order give the same
bits, which is what resume and torchrun rely on.

Two exact formulations of the paper's plain SGD ascent on x in R^V (x ~ N(0, std^2), lr 100):
- "plain":          x <- x + lr * dA/dx, with e = x @ E computed each step ([b, V] x [V, h]).
- "preconditioned": e <- e + lr * (dA/de) @ (E^T E). Since dA/dx = (dA/de) E^T, this is the same
                    iteration mapped through e = x @ E, at [b, h] x [h, h] cost instead of [b, V] x [V, h].
                    x itself is x0 + lr * (sum_t dA/de_t) @ E^T (see `recover_x`).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import torch
from torch import Tensor

from .errors import ObjectiveError
from .hooks import analysis_space, capture_dense, forward
from .model import LoadedModel
from .objectives import CompiledObjectives, Objective, compile_objectives
from .precision import default_precision, step_context
from .settings import METHODS, OptimConfig  # noqa: F401 - OptimConfig is part of this module's API

logger = logging.getLogger(__name__)

@dataclass
class OptimResult:
    labels: list[str]
    seeds: list[int]  # per-row init seed
    pre_ln: Tensor  # [batch, l, h]  x @ E
    analysis: Tensor  # [batch, l, h]  embedding output after LayerNorm (the analysis space)
    activation: Tensor  # [batch]  final objective, evaluated in float32 (model dtype if float64)
    trace_steps: list[int]
    trace: Tensor  # [batch, len(trace_steps)]  objective during optimization
    config: OptimConfig
    grad_sum: Tensor | None = field(default=None, repr=False)  # [batch, l, h] sum of dA/de (preconditioned)
    precision: str = "fp32"  # mode of the steps (ft_artifacts.precision); never of the final evaluation

    def settings(self) -> dict:
        return asdict(self.config)


def row_seed(seed: int, label: str) -> int:
    """Per-row seed from the run seed and the objective's label (stable across processes)."""
    digest = hashlib.sha256(f"{seed}:{label}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def initial_x(seed: int, length: int, vocab: int, std: float, dtype=torch.float32) -> Tensor:
    """x0 ~ N(0, std^2) in R^{l x V}, from a CPU generator so every device draws the same numbers."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(length, vocab, generator=gen, dtype=dtype) * std


def initial_embeds(lm: LoadedModel, seeds: Sequence[int], config: OptimConfig, chunk: int = 128) -> Tensor:
    """x0 @ E for every row: [batch, l, h], built in chunks to bound memory."""
    emb = lm.embedding_matrix
    out = []
    for start in range(0, len(seeds), chunk):
        x0 = torch.stack([
            initial_x(s, config.length, lm.vocab_size, config.init_std, emb.dtype) for s in seeds[start:start + chunk]
        ])
        out.append(x0.to(emb.device) @ emb)
    return torch.cat(out)


def _forward(lm, compiled: CompiledObjectives, pre_ln: Tensor, position: int, captured=None) -> Tensor:
    """Objective per (depth-sorted) row [b] for pre-LN inputs [b, l, h]; `captured`: the list of an
    enclosing `capture_dense` (hooks registered once per `optimize` call)."""
    _, acts = forward(lm, pre_ln, position, compiled.depth, compiled.active, captured)  # families: hooks.forward
    return compiled.evaluate(acts, pre_ln.shape[0])


def optimize(
    lm: LoadedModel,
    objectives: Sequence[Objective],
    config: OptimConfig | None = None,
    *,
    precision: str | None = None,
    autocast_dtype: torch.dtype | None = None,
    callback: Callable[[int, int], None] | None = None,
) -> OptimResult:
    """Maximize every objective, one batch row each.

    `precision` ("fp32", "tf32" or "bf16", see ft_artifacts.precision) is the mode of the steps;
    None takes `default_precision(device)`. `autocast_dtype=torch.bfloat16` is the older spelling of
    "bf16". Whatever the mode, the final activation and analysis vectors are re-evaluated without
    autocast and without TF32, in the model's dtype (float32 or float64).
    """
    config = config or OptimConfig()
    config.validate()
    if not objectives:
        raise ObjectiveError("nothing to optimize: give at least one objective")
    labels = [o.label for o in objectives]
    for obj in objectives:
        if obj.depth > lm.num_layers:
            raise ObjectiveError(f"{obj.label}: layer {obj.depth} is beyond this model's {lm.num_layers} layers")
    compiled = compile_objectives(objectives, lm.hidden_size, lm.device)
    order = compiled.order
    seeds = [row_seed(config.seed, label) for label in labels]
    sorted_seeds = [seeds[i] for i in order.tolist()]
    step_fn = _plain_steps if config.method == "plain" else _preconditioned_steps
    mode = _mode(precision, autocast_dtype, lm.device)
    flags, autocast = step_context(mode, lm.device, lm.dtype)
    with capture_dense(lm, config.position) as captured:  # hooks once per call, not per forward
        with flags:
            pre_ln, grad_sum, trace, trace_steps = step_fn(lm, compiled, sorted_seeds, config, autocast, callback,
                                                           captured)
        with torch.no_grad(), step_context("fp32", lm.device)[0]:  # final values in IEEE float32 (or float64)
            final = _forward(lm, compiled, pre_ln, config.position, captured)
        analysis = analysis_space(lm, pre_ln)
    inverse = torch.argsort(order)
    return OptimResult(
        labels=labels,
        seeds=seeds,
        pre_ln=pre_ln[inverse].cpu(),
        analysis=analysis[inverse].cpu(),
        activation=final[inverse].cpu(),
        trace_steps=trace_steps,
        trace=trace[inverse].cpu(),
        config=config,
        grad_sum=None if grad_sum is None else grad_sum[inverse].cpu(),
        precision=mode,
    )


def _mode(precision: str | None, autocast_dtype, device) -> str:
    if autocast_dtype is None:
        return precision or default_precision(device)
    if autocast_dtype != torch.bfloat16:
        raise ObjectiveError(f"autocast_dtype {autocast_dtype} is not supported; use precision='bf16'")
    if precision not in (None, "bf16"):
        raise ObjectiveError(f"precision {precision!r} contradicts autocast_dtype=torch.bfloat16")
    return "bf16"


def _record(trace: list, trace_steps: list, step: int, every: int, obj: Tensor) -> None:
    if step % every == 0:
        trace.append(obj.detach().float())
        trace_steps.append(step)


def preconditioner(lm: LoadedModel) -> Tensor:
    """E^T E [h, h] in the model's dtype, on its device: computed once per loaded model (E is frozen),
    in float64 whatever the precision mode, autocast or TF32 setting around the call, then rounded
    once to the model's dtype. So every mode uses the same exact matrix: none can change what
    another uses (a product computed inside a tf32 run and cached would carry TF32's rounding into
    every later fp32 run)."""
    emb = lm.embedding_matrix
    key = (emb.device, emb.dtype)
    cache = lm.cache.setdefault("preconditioner", {})
    if key not in cache:
        with torch.no_grad(), torch.autocast(emb.device.type, enabled=False):
            e64 = emb.detach().double()
            cache[key] = (e64.T @ e64).to(emb.dtype)
    return cache[key]


def _preconditioned_steps(lm, compiled, seeds, config, autocast, callback, captured=None):
    precond = preconditioner(lm)
    e = initial_embeds(lm, seeds, config)
    grad_sum = torch.zeros_like(e)
    trace, trace_steps = [], []
    for step in range(config.steps):
        e.requires_grad_(True)
        with autocast:
            obj = _forward(lm, compiled, e, config.position, captured)
        (grad,) = torch.autograd.grad(obj.sum(), e)
        grad = grad.to(e.dtype)
        _record(trace, trace_steps, step, config.trace_every, obj)
        with torch.no_grad():
            e = e.detach() + config.lr * (grad @ precond)
            grad_sum += grad
        if callback:
            callback(step + 1, config.steps)
    return e.detach(), grad_sum, _stack(trace, e), trace_steps


def _plain_steps(lm, compiled, seeds, config, autocast, callback, captured=None):
    emb = lm.embedding_matrix
    x = torch.stack([initial_x(s, config.length, lm.vocab_size, config.init_std, emb.dtype) for s in seeds])
    x = x.to(emb.device).requires_grad_(True)
    opt = torch.optim.SGD([x], lr=config.lr, momentum=0.0)
    trace, trace_steps = [], []
    for step in range(config.steps):
        opt.zero_grad(set_to_none=True)
        with autocast:
            obj = _forward(lm, compiled, x @ emb, config.position, captured)
        (-obj.sum()).backward()  # loss = -objective: SGD descent is ascent on the objective
        _record(trace, trace_steps, step, config.trace_every, obj)
        opt.step()
        if callback:
            callback(step + 1, config.steps)
    with torch.no_grad():
        return x @ emb, None, _stack(trace, x), trace_steps


def _stack(trace: list[Tensor], like: Tensor) -> Tensor:
    return torch.stack(trace, dim=1) if trace else like.new_zeros(like.shape[0], 0)


def recover_x(lm: LoadedModel, result: OptimResult, row: int) -> Tensor:
    """The optimized one-hot-space input x [l, V] of a preconditioned row: x0 + lr * G @ E^T."""
    if result.grad_sum is None:
        raise ObjectiveError("recover_x needs a result of method 'preconditioned'")
    cfg = result.config
    emb = lm.embedding_matrix.cpu()
    x0 = initial_x(result.seeds[row], cfg.length, lm.vocab_size, cfg.init_std, emb.dtype)
    return x0 + cfg.lr * result.grad_sum[row].to(emb.dtype) @ emb.T
