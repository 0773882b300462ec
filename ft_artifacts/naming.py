"""Neuron names in, (layer, index) out: the one text form `L<layer>.N<index>` used everywhere.

Layers are numbered 1..L (encoder layers, as in the paper's tables) and neurons 0..H-1. The flat
index of a neuron in a `[.., L*H]` activation matrix is `(layer - 1) * H + index`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from .errors import NeuronNameError, ObjectiveError

_NAME = re.compile(r"^L(0|[1-9][0-9]*)\.N(0|[1-9][0-9]*)$")  # canonical: ASCII digits, no leading zeros


@dataclass(frozen=True, order=True)
class Neuron:
    """One neuron: a coordinate of `encoder.layer[layer-1].output.dense` at the optimized position."""

    layer: int  # 1..L
    index: int  # 0..H-1

    def __str__(self) -> str:
        return f"L{self.layer}.N{self.index}"

    def flat(self, hidden_size: int) -> int:
        """Column of this neuron in a `[.., L*H]` activation matrix."""
        return (self.layer - 1) * hidden_size + self.index

    @classmethod
    def from_flat(cls, flat: int, hidden_size: int) -> "Neuron":
        return cls(flat // hidden_size + 1, flat % hidden_size)


def parse_neuron(name: str, num_layers: int | None = None, hidden_size: int | None = None) -> Neuron:
    """Parse `L12.N225`; with the model's shape given, refuse out-of-range layers and indices."""
    match = _NAME.match(name) if isinstance(name, str) else None
    shape = _shape_hint(num_layers, hidden_size)
    if match is None:
        raise NeuronNameError(
            f"malformed neuron name {name!r}: expected L<layer>.N<index>, e.g. L3.N7{shape}"
        )
    neuron = Neuron(int(match.group(1)), int(match.group(2)))
    if num_layers is not None and not 1 <= neuron.layer <= num_layers:
        raise NeuronNameError(f"neuron {name}: layer {neuron.layer} is out of range{shape}")
    if hidden_size is not None and not 0 <= neuron.index < hidden_size:
        raise NeuronNameError(f"neuron {name}: index {neuron.index} is out of range{shape}")
    return neuron


def _shape_hint(num_layers: int | None, hidden_size: int | None) -> str:
    if num_layers is None or hidden_size is None:
        return ""
    return f" (this model: layers 1..{num_layers}, neurons 0..{hidden_size - 1})"


def group_key(word: str, selection: str, k: int) -> str:
    """The text key of a word's neuron group, e.g. `crowd/relative/250`."""
    return f"{word}/{selection}/{k}"


class Group(NamedTuple):
    """A word's neuron group: its `k` top neurons by `selection` (absolute or relative)."""

    word: str
    selection: str
    k: int

    def __str__(self) -> str:
        return group_key(self.word, self.selection, self.k)


def parse_group(value) -> Group:
    """A `Group`, a (word, selection, k) tuple or a `word/selection/k` key as a `Group`."""
    if isinstance(value, str):
        parts = value.rsplit("/", 2)
        value = (parts[0], parts[1], parts[2]) if len(parts) == 3 else None
    if isinstance(value, (tuple, list)) and len(value) == 3:
        word, selection, k = value
        try:
            k = int(k) if not isinstance(k, bool) and str(k).isdigit() else None
        except (TypeError, ValueError):
            k = None
        if isinstance(word, str) and word and isinstance(selection, str) and k is not None:
            return Group(word, selection, k)
    raise ObjectiveError(f"malformed group {value!r}: expected (word, selection, k), e.g. ('crowd', 'relative', 250) "
                          "or 'crowd/relative/250'")
