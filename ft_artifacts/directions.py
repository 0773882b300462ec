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


def read_directions(path: str | Path, option: str = "--direction") -> np.ndarray:
    """The rows [k, h] (float64) of a .npy or .safetensors file holding one 1-D or 2-D array."""
    return load_directions(path, option)[0]


def load_directions(path: str | Path, option: str = "--direction") -> tuple[np.ndarray, str]:
    """The rows [k, h] (float64) of a .npy or .safetensors file and the sha256 of the very bytes they were
    decoded from (read once). Never unpickles: .npy through np.load(allow_pickle=False), .safetensors
    through the safetensors library. `option` names the file in the one-line refusals."""
    import hashlib
    import io

    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise ObjectiveError(f"{option} {path}: use a .npy or .safetensors file (got {path.suffix or 'no suffix'})")
    if not path.is_file():
        raise ObjectiveError(f"{option} {path}: no such file")
    try:
        data = path.read_bytes()
        if path.suffix == ".npy":
            array = np.load(io.BytesIO(data), allow_pickle=False)
        else:
            from safetensors.numpy import load

            tensors = load(data)
            if len(tensors) != 1:
                raise ObjectiveError(f"{option} {path}: holds {len(tensors)} tensors "
                                     f"({', '.join(sorted(tensors)[:5]) or 'none'}); save exactly one")
            (array,) = tensors.values()
    except ObjectiveError:
        raise
    except Exception as exc:  # noqa: BLE001 - corrupt files, object arrays, dtypes numpy cannot read (bf16)
        raise ObjectiveError(f"{option} {path}: cannot read it ({' '.join(str(exc).split())[:200]}); "
                             "save a float array with numpy.save or safetensors") from exc
    if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.number) \
            or np.issubdtype(array.dtype, np.complexfloating):
        raise ObjectiveError(f"{option} {path}: holds {getattr(array, 'dtype', type(array).__name__)} values; "
                             "save a real float array")
    if array.ndim not in (1, 2) or array.size == 0:
        raise ObjectiveError(f"{option} {path}: shape {tuple(array.shape)}; give one direction [h] or rows [k, h]")
    array = np.atleast_2d(array).astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if bad.size:
        raise ObjectiveError(f"{option} {path}: row{'s' * (bad.size > 1)} {', '.join(map(str, bad[:5]))} "
                             "hold non-finite values (NaN or inf)")
    return array, hashlib.sha256(data).hexdigest()


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


# --- the optional `directions` config of an artifact ---------------------------------------------------
# A build's settings record each directions file as {"file", "layer", "rows", "width", "sha256"}: the
# file's resolved path, the layer its rows live in, their count and width, and the sha256 of its bytes.
# So the build identity covers the file's content, and a resume refuses a changed file.

OPTION = "--directions"


def direction_sources(files: Sequence[str | Path], layers: Sequence[int]) -> tuple[dict, ...]:
    """Each file read and checked (before any model loads) into its settings entry. `layers` is one layer
    for every file, or one per file. One-line refusals for a bad file or clashing labels."""
    files, layers = list(files), list(layers)
    if not files:
        if layers:
            raise ObjectiveError(f"{OPTION}-layer needs {OPTION} FILE")
        return ()
    if len(layers) == 1:
        layers = layers * len(files)
    if len(layers) != len(files):
        raise ObjectiveError(f"give one {OPTION}-layer for every {OPTION} file, or one for all "
                             f"(got {len(files)} files and {len(layers)} layers)")
    sources, seen = [], {}
    for path, layer in zip(files, layers):
        array, sha = load_directions(path, OPTION)
        source = {"file": str(Path(path).expanduser().resolve()), "layer": int(layer), "rows": int(array.shape[0]),
                  "width": int(array.shape[1]), "sha256": sha}
        for label in source_labels(source):
            if label in seen:
                raise ObjectiveError(f"{OPTION} {path} and {seen[label]} both give the direction {label}; rename "
                                     "one file, or give it another layer")
            seen[label] = path
        sources.append(source)
    return tuple(sources)


def source_labels(source: dict) -> list[str]:
    """A settings entry's row labels, as `textualize --direction` names them."""
    return direction_labels(source["file"], source["layer"], source["rows"])


def check_sources(sources: Sequence[dict], num_layers: int, hidden_size: int) -> None:
    """Every file's layer exists and its rows fit that layer (from the settings alone)."""
    for source in sources:
        if not 1 <= source["layer"] <= num_layers:
            raise ObjectiveError(f"{OPTION}-layer {source['layer']} is not a layer of this model (layers "
                                 f"1..{num_layers}), for {OPTION} {source['file']}")
        if source["width"] != hidden_size:
            raise ObjectiveError(f"{OPTION} {source['file']}: rows have {source['width']} values but layer "
                                 f"{source['layer']} has {hidden_size} neurons")


def source_objectives(sources: Sequence[dict]) -> list[Objective]:
    """Every file's rows as objectives, read again and checked against the sha256 its settings hold."""
    objectives = []
    for source in sources:
        array, sha = load_directions(source["file"], OPTION)
        if sha != source["sha256"] or array.shape != (source["rows"], source["width"]):
            raise ObjectiveError(changed_message(source["file"], source["sha256"], sha))
        objectives += [direction_objective(d, source["layer"], label) for d, label in zip(array, source_labels(source))]
    return objectives


def changed_message(file: str, recorded: str, now: str) -> str:
    return (f"{OPTION} {file} changed since this build started (sha256 {recorded[:12]}..., now {now[:12]}...); "
            "restore the file, or pass another --out to build with the new one")


def changed_source(recorded: Sequence[dict], given: Sequence[dict]) -> str | None:
    """The one-line refusal when a build's settings differ from the recorded ones only in a directions
    file's content; None otherwise."""
    recorded, given = list(recorded or ()), list(given or ())
    if len(recorded) != len(given):
        return None
    for old, new in zip(recorded, given):
        if old.get("file") == new.get("file") and old.get("sha256") != new.get("sha256"):
            return changed_message(new["file"], str(old.get("sha256")), str(new.get("sha256")))
    return None


def weights_sha256(objective: Objective) -> str:
    import hashlib

    return hashlib.sha256(np.asarray([w for _, w in objective.terms], dtype="<f8").tobytes()).hexdigest()


def direction_rows(tokens, keys, result, targets, nearest: int, sources: Sequence[dict]):
    """The builder's rows of config `directions`: make_rows' optimized columns (through a single-neuron
    stand-in per target that carries the direction's statistics) and each direction's identity."""
    from .rows import DirectionsRow
    from .textualize import RowTarget, make_rows

    where = {label: (source, i) for source in sources for i, label in enumerate(source_labels(source))}
    stand_ins = [RowTarget(neuron(Neuron(t.objective.depth, 0)), t.most_activating_token_id,
                           t.most_activating_activation) for t in targets]
    rows = make_rows(tokens, keys, result, stand_ins, nearest)
    names = [f.name for f in fields(_Optimized)]
    out = []
    for target, r in zip(targets, rows):
        source, i = where[target.objective.label]
        out.append(DirectionsRow(direction=target.objective.label, layer=source["layer"], row=i,
                                 file=Path(source["file"]).name, file_sha256=source["sha256"],
                                 weights_sha256=weights_sha256(target.objective), **{n: getattr(r, n) for n in names}))
    return out


def source_targets(scan, sources: Sequence[dict], device=None):
    """The plan's row targets of config `directions`: each direction and its maximum over the vocabulary."""
    from .textualize import RowTarget, vocab_stats

    objectives = source_objectives(sources)
    stats = vocab_stats(scan, objectives, device=device)
    return [RowTarget(o, st["token"], st["value"]) for o, st in zip(objectives, stats)]
