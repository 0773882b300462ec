"""Neurons in, objectives out: weighted sums of neuron activations, composable like lucent's.

Sign convention, stated once: an objective is a quantity to MAXIMIZE; the optimizer descends on
loss = -objective. A single neuron's objective is its activation a_i; a group I's objective is the
mean of a_i over I (the paper's sum_{i in I} a_i / k), built from the single-neuron objectives.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    """A batch of objectives as per-layer (row, column, weight) index tensors.

    Rows are in the caller's order; `order` sorts them by depth, deepest first, so the forward pass
    can drop rows whose target layers are done (`active[i]` rows need layer i+1).
    """

    order: Tensor  # [batch] row permutation, deepest first
    active: list[int]  # per layer: how many sorted rows need it
    per_layer: list[tuple[Tensor, Tensor, Tensor]]  # per layer: sorted row, neuron index, weight
    depth: int

    def evaluate(self, acts: list[Tensor], batch: int) -> Tensor:
        """Objective per sorted row [batch] from per-layer activations acts[i] [active[i], h]."""
        total = acts[0].new_zeros(batch)
        for layer_acts, (rows, cols, weights) in zip(acts, self.per_layer):
            if rows.numel():
                total = total.index_add(0, rows, layer_acts[rows, cols] * weights.to(layer_acts.dtype))
        return total


def compile_objectives(objectives: Sequence[Objective], hidden_size: int, device) -> CompiledObjectives:
    depths = torch.tensor([o.depth for o in objectives])
    order = torch.argsort(-depths, stable=True)
    sorted_depths = depths[order]
    depth = int(sorted_depths.max())
    active = [int((sorted_depths >= layer).sum()) for layer in range(1, depth + 1)]
    entries: list[list[tuple[int, int, float]]] = [[] for _ in range(depth)]
    for row, original in enumerate(order.tolist()):
        for n, w in objectives[original].terms:
            if n.layer < 1 or not 0 <= n.index < hidden_size:  # layer 0 would index entries[-1]
                raise ObjectiveError(f"{objectives[original].label}: neuron {n} is out of range")
            entries[n.layer - 1].append((row, n.index, w))
    per_layer = []
    for layer_entries in entries:
        rows, cols, weights = zip(*layer_entries) if layer_entries else ((), (), ())
        per_layer.append((
            torch.tensor(rows, dtype=torch.long, device=device),
            torch.tensor(cols, dtype=torch.long, device=device),
            torch.tensor(weights, dtype=torch.float64, device=device),
        ))
    return CompiledObjectives(order.to(device), active, per_layer, depth)
