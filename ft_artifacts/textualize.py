"""Objectives in, textualizations out: optimized inputs with their activation, most activating token
and nearest vocabulary tokens, as plain dicts (the rows of the CLI's JSON and of the datasets)."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from .errors import ObjectiveError
from .metrics import cosine_topk, cosine_to, rank_of
from .model import LoadedModel
from .naming import group_key, parse_neuron
from .objectives import Objective, group, neuron
from .optimize import OptimConfig, OptimResult, optimize
from .scan import SELECTIONS, VocabScan


def neuron_objectives(lm: LoadedModel, names: Sequence[str]) -> list[Objective]:
    """`L3.N7`-style names to single-neuron objectives, validated against the model's shape."""
    return [neuron(parse_neuron(n, lm.num_layers, lm.hidden_size)) for n in names]


def group_objective(lm: LoadedModel, scan: VocabScan, word: str, selection: str, k: int) -> Objective:
    """The paper's neuron group I_w: the word's top-k neurons (absolute or relative), averaged."""
    if selection not in SELECTIONS:
        raise ObjectiveError(f"unknown selection {selection!r}; choose absolute or relative")
    return group(scan.top_neurons(lm.token_id(word), k, selection), group_key(word, selection, k))


def vocab_stats(
    scan: VocabScan, objectives: Sequence[Objective], target_ids: Sequence[int | None] | None = None, chunk: int = 128
) -> list[dict]:
    """Per objective, from the scan: the vocabulary item that maximizes it (`token`, `value`) and, where
    `target_ids[j]` is given, the value of that token alone (`target`).

    Multi-neuron objectives are evaluated for every token at once, one [V, L*H] x [L*H, chunk] product
    per chunk of objectives; single neurons read the scan's a_max and argmax.
    """
    targets = list(target_ids) if target_ids is not None else [None] * len(objectives)
    stats: list[dict] = [{} for _ in objectives]
    dense = [j for j, o in enumerate(objectives) if len(o.terms) > 1 or targets[j] is not None]
    for j in sorted(set(range(len(objectives))) - set(dense)):
        ((n, w),) = objectives[j].terms
        col = n.flat(scan.hidden_size)
        stats[j] = {"token": int(scan.argmax[col]), "value": float(scan.a_max[col]) * w}
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


def describe(
    lm: LoadedModel,
    keys: torch.Tensor,
    result: OptimResult,
    objectives: Sequence[Objective],
    most: Sequence[tuple[int, float]],
    nearest: int = 10,
    target_ids: Sequence[int | None] | None = None,
) -> list[dict]:
    """One dict per optimized row: activation, most activating token, nearest tokens, vectors.

    keys: [V, h] the vocabulary's analysis-space vectors; most[j]: (token id, activation) of the
    vocabulary item that maximizes objective j; target_ids[j] (optional): row j's target word, whose
    rank and cosine are added as `target_rank` and `target_cosine`.
    """
    position = result.config.position - 1
    vectors = result.analysis[:, position].float()
    cosines, ids = cosine_topk(vectors, keys, nearest)
    rows = []
    for j, obj in enumerate(objectives):
        token, token_act = most[j]
        rows.append({
            "objective": obj.label,
            "neurons": [str(n) for n in obj.neurons],
            "activation": float(result.activation[j]),
            "most_activating_token": lm.tokens[token],
            "most_activating_token_id": int(token),
            "most_activating_activation": float(token_act),
            "nearest": [
                {"token": lm.tokens[int(i)], "cosine": float(c)} for c, i in zip(cosines[j], ids[j])
            ],
            "norm": float(vectors[j].norm()),
            "vector": vectors[j].tolist(),
            "pre_ln_vector": result.pre_ln[j, position].float().tolist(),
            "activation_trace": result.trace[j].tolist(),
            "seed": result.seeds[j],
        })
    idx = [j for j, t in enumerate(target_ids or []) if t is not None]
    if idx:
        for j, extra in zip(idx, _target_stats(keys, vectors[idx], [target_ids[j] for j in idx])):
            rows[j].update(extra)
    return rows


def _target_stats(keys: torch.Tensor, row_vectors: torch.Tensor, target_ids: Sequence[int]) -> list[dict]:
    """For group rows: the target word's rank among the vocabulary (1 = nearest) and its cosine."""
    ids = torch.tensor(list(target_ids), dtype=torch.long)
    ranks = rank_of(row_vectors.float(), keys, ids)
    cosines = cosine_to(row_vectors.float(), keys, ids)
    return [{"target_rank": int(r), "target_cosine": float(c)} for r, c in zip(ranks, cosines)]


def textualize(
    lm: LoadedModel,
    scan: VocabScan,
    objectives: Sequence[Objective],
    config: OptimConfig | None = None,
    *,
    words: Sequence[str | None] | None = None,
    nearest: int = 10,
    autocast_dtype: torch.dtype | None = None,
    callback: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """Optimize all objectives in one batch and describe each; `words[j]` names row j's target word."""
    result = optimize(lm, objectives, config, autocast_dtype=autocast_dtype, callback=callback)
    keys = torch.from_numpy(scan.analysis)
    words = list(words or [None] * len(objectives))
    target_ids = [lm.token_id(w) if w else None for w in words]
    vocab = vocab_stats(scan, objectives, target_ids)
    rows = describe(lm, keys, result, objectives, [(v["token"], v["value"]) for v in vocab], nearest, target_ids)
    for row, word, stats in zip(rows, words, vocab):
        if word:
            row.update(target_word=word, target_activation=stats["target"])
    return rows
