"""A direction file (.npy or .safetensors, one or many rows) and a layer in, objectives and rows out.

A direction d in a layer's neuron space (an SAE feature's encoder row, a probe's weights) is the
objective sum_i d_i * a_{L.i}: the same weighted sum of neuron activations that a group is, so a
group of k neurons of one layer is the direction with weight 1/k on them (tests/test_directions.py
checks that both give the same row). Every coordinate is kept as a term, zeros included, so the
most activating token is always the full weighted sum's maximum over the vocabulary.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .errors import ObjectiveError
from .naming import Neuron
from .objectives import Objective, neuron
from .rows import _col, _Optimized
from .settings import DEFAULT_NEAREST

logger = logging.getLogger(__name__)

SUFFIXES = (".npy", ".safetensors")


@dataclass
class _Direction:
    direction: str = _col("string")  # `L2.probe[0]`: layer, file stem, row
    layer: int = _col("int32")  # 1..L
    row: int = _col("int32")  # row of the file

    @property
    def label(self) -> str:
        return self.direction


@dataclass
class DirectionRow(_Optimized, _Direction):
    """One direction of a layer's neuron space and its optimized input (the `--json` object of
    `textualize --direction`; the optimized columns are those of the neurons and word_groups configs)."""


def read_directions(path: str | Path) -> np.ndarray:
    """The rows [k, h] (float64) of a .npy or .safetensors file holding one 1-D or 2-D array."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise ObjectiveError(f"--direction {path}: use a .npy or .safetensors file (got {path.suffix or 'no suffix'})")
    if not path.is_file():
        raise ObjectiveError(f"--direction {path}: no such file")
    try:
        if path.suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        else:
            from safetensors.numpy import load_file

            tensors = load_file(str(path))
            if len(tensors) != 1:
                raise ObjectiveError(f"--direction {path}: holds {len(tensors)} tensors "
                                     f"({', '.join(sorted(tensors)[:5]) or 'none'}); save exactly one")
            (array,) = tensors.values()
    except ObjectiveError:
        raise
    except Exception as exc:  # noqa: BLE001 - corrupt files, object arrays, dtypes numpy cannot read (bf16)
        raise ObjectiveError(f"--direction {path}: cannot read it ({' '.join(str(exc).split())[:200]}); "
                             "save a float array with numpy.save or safetensors") from exc
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise ObjectiveError(f"--direction {path}: holds {array.dtype} values; save a real float array")
    if array.ndim not in (1, 2) or array.size == 0:
        raise ObjectiveError(f"--direction {path}: shape {tuple(array.shape)}; give one direction [h] or rows [k, h]")
    array = np.atleast_2d(array).astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if bad.size:
        raise ObjectiveError(f"--direction {path}: row{'s' * (bad.size > 1)} {', '.join(map(str, bad[:5]))} "
                             "hold non-finite values (NaN or inf)")
    return array


def check_directions(directions: np.ndarray, layer: int, num_layers: int, hidden_size: int, where: str = "") -> None:
    """The layer exists and every row has one weight per neuron of it; one-line refusal otherwise."""
    if not 1 <= layer <= num_layers:
        raise ObjectiveError(f"--layer {layer} is not a layer of this model (layers 1..{num_layers})")
    if directions.shape[1] != hidden_size:
        raise ObjectiveError(f"--direction {where}: rows have {directions.shape[1]} values but layer {layer} has "
                             f"{hidden_size} neurons")


def direction_objective(direction: Sequence[float], layer: int, label: str) -> Objective:
    """sum_i direction[i] * a_{layer.i}, every coordinate a term (zeros included)."""
    return Objective(tuple((Neuron(layer, i), float(w)) for i, w in enumerate(direction)), label)


def direction_labels(path: str | Path, layer: int, count: int) -> list[str]:
    stem = Path(path).stem
    return [f"L{layer}.{stem}[{i}]" for i in range(count)]


def textualize_directions(
    lm, scan, directions: np.ndarray, layer: int, config=None, *, labels: Sequence[str] | None = None,
    nearest: int = DEFAULT_NEAREST, precision: str | None = None, callback: Callable[[int, int], None] | None = None,
) -> list[DirectionRow]:
    """Optimize every direction in one batch and describe each as textualize describes neurons."""
    import torch

    from .optimize import optimize
    from .textualize import RowTarget, make_rows, vocab_stats

    check_directions(directions, layer, lm.num_layers, lm.hidden_size)
    labels = list(labels) if labels is not None else [f"L{layer}.direction[{i}]" for i in range(len(directions))]
    objectives = [direction_objective(d, layer, label) for d, label in zip(directions, labels)]
    stats = vocab_stats(scan, objectives, device=lm.device)
    # make_rows names a row by its target's objective; a single-neuron stand-in carries the
    # direction's statistics and the row is then renamed, its optimized columns unchanged.
    targets = [RowTarget(neuron(Neuron(layer, 0)), st["token"], st["value"]) for st in stats]
    result = optimize(lm, objectives, config, precision=precision, callback=callback)
    rows = make_rows(lm.tokens, torch.from_numpy(scan.analysis), result, targets, nearest)
    names = [f.name for f in fields(_Optimized)]
    return [DirectionRow(direction=label, layer=layer, row=i, **{n: getattr(r, n) for n in names})
            for i, (label, r) in enumerate(zip(labels, rows))]
