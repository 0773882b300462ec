"""Objectives in, textualizations out: optimized inputs with their activation, most activating token
and nearest vocabulary tokens, as plain dicts (the rows of the CLI's JSON and of the datasets)."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from .metrics import cosine_topk, cosine_to, rank_of
from .model import LoadedModel
from .naming import group_key
from .objectives import Objective, group, neuron
from .naming import parse_neuron
from .optimize import OptimConfig, OptimResult, optimize
from .scan import SELECTIONS, VocabScan
from .errors import ObjectiveError


def neuron_objectives(lm: LoadedModel, names: Sequence[str]) -> list[Objective]:
    """`L3.N7`-style names to single-neuron objectives, validated against the model's shape."""
    return [neuron(parse_neuron(n, lm.num_layers, lm.hidden_size)) for n in names]


def group_objective(lm: LoadedModel, scan: VocabScan, word: str, selection: str, k: int) -> Objective:
    """The paper's neuron group I_w: the word's top-k neurons (absolute or relative), averaged."""
    if selection not in SELECTIONS:
        raise ObjectiveError(f"unknown selection {selection!r}; choose absolute or relative")
    return group(scan.top_neurons(lm.token_id(word), k, selection), group_key(word, selection, k))


def objective_on_vocab(scan: VocabScan, objective: Objective) -> np.ndarray:
    """The objective's value for every vocabulary item alone [V], from the scan."""
    cols = np.array([n.flat(scan.hidden_size) for n in objective.neurons])
    weights = np.array([w for _, w in objective.terms], dtype=np.float64)
    return np.asarray(scan.acts[:, cols], dtype=np.float64) @ weights


def most_activating(scan: VocabScan, objective: Objective) -> tuple[int, float]:
    """(token id, objective value) of the vocabulary item that maximizes the objective."""
    if len(objective.terms) == 1:
        col = objective.neurons[0].flat(scan.hidden_size)
        return int(scan.argmax[col]), float(scan.a_max[col]) * objective.terms[0][1]
    values = objective_on_vocab(scan, objective)
    best = int(values.argmax())
    return best, float(values[best])


def describe(
    lm: LoadedModel, scan: VocabScan, result: OptimResult, objectives: Sequence[Objective], nearest: int = 10
) -> list[dict]:
    """One dict per optimized row: activation, most activating token, nearest tokens, vectors."""
    keys = torch.from_numpy(scan.analysis)
    position = result.config.position - 1
    vectors = result.analysis[:, position].float()
    cosines, ids = cosine_topk(vectors, keys, nearest)
    rows = []
    for j, obj in enumerate(objectives):
        token, token_act = most_activating(scan, obj)
        rows.append({
            "objective": obj.label,
            "neurons": [str(n) for n in obj.neurons],
            "activation": float(result.activation[j]),
            "most_activating_token": lm.tokens[token],
            "most_activating_token_id": token,
            "most_activating_activation": token_act,
            "nearest": [
                {"token": lm.tokens[int(i)], "cosine": float(c)} for c, i in zip(cosines[j], ids[j])
            ],
            "norm": float(vectors[j].norm()),
            "vector": vectors[j].tolist(),
            "pre_ln_vector": result.pre_ln[j, position].float().tolist(),
            "seed": result.seeds[j],
        })
    return rows


def word_stats(lm: LoadedModel, scan: VocabScan, row_vectors: torch.Tensor, words: Sequence[str],
               objectives: Sequence[Objective]) -> list[dict]:
    """For group rows: the target word's cosine, rank among the vocabulary, and own group activation."""
    keys = torch.from_numpy(scan.analysis)
    ids = torch.tensor([lm.token_id(w) for w in words])
    ranks = rank_of(row_vectors.float(), keys, ids)
    cosines = cosine_to(row_vectors.float(), keys, ids)
    return [
        {
            "target_word": w,
            "target_rank": int(r),
            "target_cosine": float(c),
            "target_activation": float(objective_on_vocab(scan, obj)[lm.token_id(w)]),
        }
        for w, r, c, obj in zip(words, ranks, cosines, objectives)
    ]


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
    rows = describe(lm, scan, result, objectives, nearest)
    targets = [(j, w) for j, w in enumerate(words or []) if w]
    if targets:
        idx = [j for j, _ in targets]
        vectors = result.analysis[idx, result.config.position - 1]
        stats = word_stats(lm, scan, vectors, [w for _, w in targets], [objectives[j] for j in idx])
        for j, extra in zip(idx, stats):
            rows[j].update(extra)
    return rows
