"""Neurons in, objectives out: weighted sums of neuron activations, composable like lucent's.

Sign convention, stated once: an objective is a quantity to MAXIMIZE; the optimizer descends on
loss = -objective. A single neuron's objective is its activation a_i; a group I's objective is the
mean of a_i over I (the paper's sum_{i in I} a_i / k), built from the single-neuron objectives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import torch
from torch import Tensor

from .errors import ObjectiveError
from .naming import Neuron


@dataclass(frozen=True)
class Objective:
    """sum_j weight_j * a_{neuron_j}, evaluated at the optimized position."""

    terms: tuple[tuple[Neuron, float], ...]
    label: str

    @property
    def neurons(self) -> tuple[Neuron, ...]:
        return tuple(n for n, _ in self.terms)

    @property
    def depth(self) -> int:
        """Deepest layer the objective reads; the forward pass can stop there."""
        return max(n.layer for n in self.neurons)

    def __call__(self, acts: Tensor, hidden_size: int) -> Tensor:
        """Evaluate on activations [..., L*h] (or [..., depth*h]); returns [...]."""
        flat = torch.tensor([n.flat(hidden_size) for n in self.neurons], device=acts.device)
        weights = torch.tensor([w for _, w in self.terms], dtype=acts.dtype, device=acts.device)
        return (acts[..., flat] * weights).sum(-1)

    def __add__(self, other: "Objective") -> "Objective":
        return Objective(self.terms + other.terms, f"{self.label}+{other.label}")

    def __mul__(self, scale: float) -> "Objective":
        return Objective(tuple((n, w * scale) for n, w in self.terms), self.label)

    __rmul__ = __mul__


def neuron(n: Neuron) -> Objective:
    """Maximize one neuron's activation."""
    return Objective(((n, 1.0),), str(n))


def mean(objectives: Sequence[Objective], label: str) -> Objective:
    """Maximize the mean of several objectives (a neuron group: the mean of its neurons)."""
    if not objectives:
        raise ObjectiveError(f"{label}: a group needs at least one neuron")
    total = objectives[0]
    for obj in objectives[1:]:
        total = total + obj
    return Objective((total * (1.0 / len(objectives))).terms, label)


def group(neurons: Iterable[Neuron], label: str) -> Objective:
    """The paper's group objective: mean activation over the neurons of I."""
    neurons = list(neurons)
    if len(set(neurons)) != len(neurons):
        raise ObjectiveError(f"{label}: a neuron group lists the same neuron twice")
    return mean([neuron(n) for n in neurons], label)


@dataclass
class CompiledObjectives:
    """A batch of objectives as per-layer dense weight matrices.

    Rows are in the caller's order; `order` sorts them by depth, deepest first, so the forward pass
    can drop rows whose target layers are done (`active[i]` rows need layer i+1).

    The objective of a row is sum over layers of (acts_i * W_i).sum(-1): an elementwise product and a
    fixed-shape reduction, forward and backward, so no scatter or indexed accumulation (index_add,
    index_put with accumulate, gather's backward), which torch documents as nondeterministic on CUDA.
    W_i is [active_i, h], zero outside a row's members: at most L x batch x h values.
    """

    order: Tensor  # [batch] row permutation, deepest first
    active: list[int]  # per layer: how many sorted rows need it
    dense: list[Tensor | None]  # per layer: weights [active_i, h], float64 on the CPU; None: no row reads it
    depth: int
    device: torch.device | str = "cpu"  # where `weights(dtype)` puts them
    _cast: dict = field(default_factory=dict, repr=False)

    def weights(self, dtype: torch.dtype) -> list[Tensor | None]:
        """The per-layer weights in `dtype` on the device, converted once per dtype."""
        if dtype not in self._cast:
            self._cast[dtype] = [None if w is None else w.to(self.device, dtype) for w in self.dense]
        return self._cast[dtype]

    def evaluate(self, acts: list[Tensor], batch: int) -> Tensor:
        """Objective per sorted row [batch] from per-layer activations acts[i] [active[i], h].

        Accumulated in float32 whatever the activations' dtype (bfloat16 under autocast), float64
        for a float64 model."""
        dtype = torch.promote_types(acts[0].dtype, torch.float32)
        total = None
        for layer_acts, weights in zip(acts, self.weights(dtype)):
            if weights is None:
                continue
            value = (layer_acts.to(dtype) * weights).sum(-1)
            if value.shape[0] < batch:
                value = torch.cat([value, value.new_zeros(batch - value.shape[0])])
            total = value if total is None else total + value
        return total if total is not None else acts[0].new_zeros(batch, dtype=dtype)


def compile_objectives(objectives: Sequence[Objective], hidden_size: int, device) -> CompiledObjectives:
    depths = torch.tensor([o.depth for o in objectives])
    order = torch.argsort(-depths, stable=True)
    sorted_depths = depths[order]
    depth = int(sorted_depths.max())
    active = [int((sorted_depths >= layer).sum()) for layer in range(1, depth + 1)]
    dense: list[Tensor | None] = [None] * depth
    for row, original in enumerate(order.tolist()):
        for n, w in objectives[original].terms:
            if n.layer < 1 or not 0 <= n.index < hidden_size:  # layer 0 would index dense[-1]
                raise ObjectiveError(f"{objectives[original].label}: neuron {n} is out of range")
            if dense[n.layer - 1] is None:
                dense[n.layer - 1] = torch.zeros(active[n.layer - 1], hidden_size, dtype=torch.float64)
            dense[n.layer - 1][row, n.index] += w
    return CompiledObjectives(order.to(device), active, dense, depth, device)
