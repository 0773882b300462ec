"""Objectives in, textualizations out: optimized inputs with their activation, most activating token
and nearest vocabulary tokens, as the typed rows of rows.py (the CLI's JSON and the datasets' rows)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from .errors import ObjectiveError
from .metrics import cosine_topk, cosine_to, rank_of
from .model import LoadedModel
from .naming import Neuron, group_key, parse_neuron
from .objectives import Objective, group, neuron
from .optimize import OptimConfig, OptimResult, optimize
from .rows import GroupRow, Nearest, NeuronRow
from .scan import VocabScan
from .settings import DEFAULT_NEAREST, check_selection


def neuron_objectives(lm: LoadedModel, names: Sequence[str]) -> list[Objective]:
    """`L3.N7`-style names to single-neuron objectives, validated against the model's shape."""
    return [neuron(parse_neuron(n, lm.num_layers, lm.hidden_size)) for n in names]


def group_objective(lm: LoadedModel, scan: VocabScan, word: str, selection: str, k: int) -> Objective:
    """The paper's neuron group I_w: the word's top-k neurons (absolute or relative), averaged."""
    check_selection(selection)
    return group(scan.top_neurons(lm.token_id(word), k, selection), group_key(word, selection, k))


def vocab_stats(
    scan: VocabScan, objectives: Sequence[Objective], target_ids: Sequence[int | None] | None = None,
    chunk: int = 128, device=None,
) -> list[dict]:
    """Per objective, from the scan: the vocabulary item that maximizes it (`token`, `value`) and, where
    `target_ids[j]` is given, the value of that token alone (`target`).

    Single neurons read the scan's a_max and argmax. Multi-neuron objectives, on a CUDA (or other
    non-CPU) `device` (the model's): the scan is copied there once and each objective gathers its
    member columns ([V, k]) and sums them in float32 (`gather_stats`). On the CPU (device None or
    cpu): one [V, L*H] x [L*H, chunk] float32 product per chunk of objectives, which measured faster
    there than gathering columns of the row-major matrix (bert-base shape, 800 groups: 12.8 s against
    197 s for per-chunk column gathers, one thread).
    """
    targets = list(target_ids) if target_ids is not None else [None] * len(objectives)
    stats: list[dict] = [{} for _ in objectives]
    dense = [j for j, o in enumerate(objectives) if len(o.terms) > 1 or targets[j] is not None]
    for j in sorted(set(range(len(objectives))) - set(dense)):
        ((n, w),) = objectives[j].terms
        col = n.flat(scan.hidden_size)
        stats[j] = {"token": int(scan.argmax[col]), "value": float(scan.a_max[col]) * w}
    device = torch.device(device if device is not None else "cpu")
    if dense and device.type != "cpu":
        acts = _to_device(scan.acts, device)
        for j, st in zip(dense, gather_stats(acts, [objectives[j] for j in dense], [targets[j] for j in dense],
                                             scan.hidden_size)):
            stats[j] = st
        return stats
    for start in range(0, len(dense), chunk):
        part = dense[start:start + chunk]
        weights = np.zeros((scan.acts.shape[1], len(part)), dtype=np.float32)
        for c, j in enumerate(part):
            for n, w in objectives[j].terms:
                weights[n.flat(scan.hidden_size), c] += w
        values = np.asarray(scan.acts @ weights, dtype=np.float32)  # [V, len(part)]
        best = values.argmax(axis=0)  # the first token reaching the maximum, as in the scan
        for c, j in enumerate(part):
            stats[j] = {"token": int(best[c]), "value": float(values[best[c], c])}
            if targets[j] is not None:
                stats[j]["target"] = float(values[targets[j], c])
    return stats


def gather_stats(acts: torch.Tensor, objectives: Sequence[Objective], targets: Sequence[int | None],
                 hidden_size: int) -> list[dict]:
    """vocab_stats of multi-neuron objectives from the scan's activations `acts` [V, L*H] (float32, on
    any device): each objective's member columns gathered and summed with its weights, in float32."""
    out = []
    for obj, target in zip(objectives, targets):
        cols, weights = _members(obj, hidden_size)
        values = (acts.index_select(1, torch.from_numpy(cols).to(acts.device))
                  * torch.from_numpy(weights).to(acts.device)).sum(1)  # [V]
        best = int(values.argmax())  # the first token reaching the maximum, as in the scan
        out.append({"token": best, "value": float(values[best])})
        if target is not None:
            out[-1]["target"] = float(values[target])
    return out


def _to_device(acts: np.ndarray, device, rows: int = 4096) -> torch.Tensor:
    """The scan's [V, L*H] activations as float32 on `device`, copied in blocks of rows (a memory map
    or float16 storage is never converted whole on the host)."""
    out = torch.empty(acts.shape, dtype=torch.float32, device=device)
    for start in range(0, acts.shape[0], rows):
        out[start:start + rows] = torch.from_numpy(np.asarray(acts[start:start + rows], dtype=np.float32))
    return out


def _members(objective: Objective, hidden_size: int) -> tuple[np.ndarray, np.ndarray]:
    """An objective's distinct flat neuron indices (sorted) and their summed weights (float32)."""
    merged: dict[int, float] = {}
    for n, w in objective.terms:
        merged[n.flat(hidden_size)] = merged.get(n.flat(hidden_size), 0.0) + w
    cols = np.array(sorted(merged), dtype=np.int64)
    return cols, np.array([merged[c] for c in cols], dtype=np.float32)


@dataclass(frozen=True)
class RowTarget:
    """What one optimized row will be, known before optimizing: its objective, the vocabulary item
    that maximizes it and, for a word's group, the word, selection, k and the word's own activation."""

    objective: Objective
    most_activating_token_id: int
    most_activating_activation: float
    word: str | None = None
    selection: str | None = None
    k: int | None = None
    target_token_id: int | None = None
    target_activation: float | None = None

    def to_dict(self) -> dict:
        """JSON form (neurons as [layer, index] pairs), for saving a build plan."""
        data = {k: v for k, v in self.__dict__.items() if k != "objective"}
        data["label"] = self.objective.label
        data["terms"] = [[n.layer, n.index, w] for n, w in self.objective.terms]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "RowTarget":
        data = dict(data)
        terms = tuple((Neuron(int(l), int(i)), float(w)) for l, i, w in data.pop("terms"))
        return cls(Objective(terms, data.pop("label")), **data)


def diverged_rows(result: OptimResult) -> torch.Tensor:
    """[batch] bool: rows whose final activation or vectors are not finite."""
    position = result.config.position - 1
    finite = torch.isfinite(result.activation)
    finite &= torch.isfinite(result.analysis[:, position]).all(-1)
    finite &= torch.isfinite(result.pre_ln[:, position]).all(-1)
    return ~finite


def make_rows(
    tokens: Sequence[str],
    keys: torch.Tensor,
    result: OptimResult,
    targets: Sequence[RowTarget],
    nearest: int = DEFAULT_NEAREST,
) -> list[NeuronRow | GroupRow]:
    """The one path from an optimization result to rows, shared by `textualize` and the builder.

    keys: [V, h] the vocabulary's analysis-space vectors; targets[j] describes result row j.
    Diverged rows keep their (non-finite) values, get no nearest tokens and no target rank."""
    config = result.config
    position = config.position - 1
    vectors = result.analysis[:, position].float()  # [b, h]
    diverged = diverged_rows(result)
    ok = (~diverged).nonzero().flatten()
    near: dict[int, list[Nearest]] = {int(j): [] for j in diverged.nonzero().flatten()}
    if ok.numel():
        cosines, ids = cosine_topk(vectors[ok], keys, nearest)
        for j, cs, row_ids in zip(ok.tolist(), cosines, ids):
            near[j] = [Nearest(tokens[int(i)], float(c)) for c, i in zip(cs, row_ids)]
    group_rows = [j for j in ok.tolist() if targets[j].target_token_id is not None]
    ranks: dict[int, tuple[int, float]] = {}
    if group_rows:
        ids = torch.tensor([targets[j].target_token_id for j in group_rows], dtype=torch.long)
        rank = rank_of(vectors[group_rows], keys, ids)
        cos = cosine_to(vectors[group_rows], keys, ids)
        ranks = {j: (int(r), float(c)) for j, r, c in zip(group_rows, rank, cos)}
    rows: list[NeuronRow | GroupRow] = []
    for j, target in enumerate(targets):
        common = dict(
            vector=vectors[j].tolist(),
            pre_ln_vector=result.pre_ln[j, position].float().tolist(),
            norm=float(vectors[j].norm()),
            activation=float(result.activation[j]),
            diverged=bool(diverged[j]),
            most_activating_token=tokens[target.most_activating_token_id],
            most_activating_token_id=int(target.most_activating_token_id),
            most_activating_activation=float(target.most_activating_activation),
            nearest=near[j],
            activation_trace=result.trace[j].float().tolist(),
            seed=int(result.seeds[j]),
            steps=config.steps, lr=config.lr, init_std=config.init_std, method=config.method,
        )
        if target.word is None:
            (n,) = target.objective.neurons
            rows.append(NeuronRow(neuron=str(n), layer=n.layer, index=n.index, **common))
        else:
            rank, cosine = ranks.get(j, (None, None))
            rows.append(GroupRow(
                group=target.objective.label, word=target.word, selection=target.selection, k=target.k,
                neurons=[str(n) for n in target.objective.neurons], target_token_id=target.target_token_id,
                target_rank=rank, target_cosine=cosine, target_activation=float(target.target_activation),
                **common,
            ))
    return rows


def targets_for(
    scan: VocabScan, objectives: Sequence[Objective], groups: Sequence[tuple[str, int, str, int] | None] | None = None,
    device=None,
) -> list[RowTarget]:
    """Row targets from the scan: groups[j] = (word, word id, selection, k) for a word's group; the
    groups' statistics are computed on `device` (the model's; None: the CPU)."""
    groups = list(groups) if groups is not None else [None] * len(objectives)
    stats = vocab_stats(scan, objectives, [g[1] if g else None for g in groups], device=device)
    out = []
    for obj, g, st in zip(objectives, groups, stats):
        if g is None:
            if len(obj.terms) != 1:
                raise ObjectiveError(f"{obj.label}: a multi-neuron objective needs its word, selection and k")
            out.append(RowTarget(obj, st["token"], st["value"]))
        else:
            word, word_id, selection, k = g
            out.append(RowTarget(obj, st["token"], st["value"], word, selection, k, word_id, st["target"]))
    return out


def textualize(
    lm: LoadedModel,
    scan: VocabScan,
    objectives: Sequence[Objective],
    config: OptimConfig | None = None,
    *,
    groups: Sequence[tuple[str, str, int] | None] | None = None,
    nearest: int = DEFAULT_NEAREST,
    precision: str | None = None,
    callback: Callable[[int, int], None] | None = None,
) -> list[NeuronRow | GroupRow]:
    """Optimize all objectives in one batch and describe each; `groups[j]` = (word, selection, k)
    names row j's word group (None for a single neuron); `precision` is the steps' mode (None: the
    device's default, see ft_artifacts.precision)."""
    groups = list(groups) if groups is not None else [None] * len(objectives)
    keyed = [(g[0], lm.token_id(g[0]), g[1], g[2]) if g else None for g in groups]
    targets = targets_for(scan, objectives, keyed, device=lm.device)
    result = optimize(lm, objectives, config, precision=precision, callback=callback)
    return make_rows(lm.tokens, torch.from_numpy(scan.analysis), result, targets, nearest)
