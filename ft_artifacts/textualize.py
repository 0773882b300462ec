"""Objectives in, textualizations out: optimized inputs with their activation, most activating token
and nearest vocabulary tokens, as plain dicts (the rows of the CLI's JSON and of the datasets)."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from .metrics import cosine_topk, cosine_to, rank_of
from .model import LoadedModel
from .errors import ObjectiveError
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


def objective_on_vocab(scan: VocabScan, objective: Objective) -> np.ndarray:
    """The objective's value for every vocabulary item alone [V], from the scan (one mat-vec)."""
    weights = np.zeros(scan.acts.shape[1], dtype=scan.acts.dtype)
    for n, w in objective.terms:
        weights[n.flat(scan.hidden_size)] += w
    return np.asarray(scan.acts @ weights, dtype=np.float64)


def most_activating(scan: VocabScan, objective: Objective) -> tuple[int, float]:
    """(token id, objective value) of the vocabulary item that maximizes the objective."""
    if len(objective.terms) == 1:
        col = objective.neurons[0].flat(scan.hidden_size)
        return int(scan.argmax[col]), float(scan.a_max[col]) * objective.terms[0][1]
    values = objective_on_vocab(scan, objective)
    best = int(values.argmax())
    return best, float(values[best])


def describe(
    lm: LoadedModel,
    keys: torch.Tensor,
    result: OptimResult,
    objectives: Sequence[Objective],
    most: Sequence[tuple[int, float]],
    nearest: int = 10,
) -> list[dict]:
    """One dict per optimized row: activation, most activating token, nearest tokens, vectors.

    keys: [V, h] the vocabulary's analysis-space vectors; most[j]: (token id, activation) of the
    vocabulary item that maximizes objective j.
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
    return rows


def target_stats(keys: torch.Tensor, row_vectors: torch.Tensor, target_ids: Sequence[int]) -> list[dict]:
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
    rows = describe(lm, keys, result, objectives, [most_activating(scan, o) for o in objectives], nearest)
    targets = [(j, w) for j, w in enumerate(words or []) if w]
    if targets:
        idx = [j for j, _ in targets]
        target_ids = [lm.token_id(w) for _, w in targets]
        stats = target_stats(keys, result.analysis[idx, result.config.position - 1], target_ids)
        for j, (_, word), tid, extra in zip(idx, targets, target_ids, stats):
            values = objective_on_vocab(scan, objectives[j])
            rows[j].update(target_word=word, target_activation=float(values[tid]), **extra)
    return rows
