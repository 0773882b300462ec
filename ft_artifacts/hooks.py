"""Word-embedding-space inputs in, the embedding output and `layer.output.dense` activations out.

Activation names, used everywhere:
- `pre_ln`:   `x @ E`, the token part of the embedding before position/type embeddings and LayerNorm
- `analysis`: the embedding layer's output (after LayerNorm), the vector that enters encoder layer 1
- `acts[i]`:  output of `encoder.layer[i-1].output.dense` (before dropout, residual and LayerNorm),
              read at one position; layer i is numbered 1..L as in the paper. Other families read
              their own last feed-forward linear (ft_artifacts.families).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor

from .families import Captured, model_forward, register
from .model import LoadedModel


def cls_sep(lm: LoadedModel, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """The [CLS] and [SEP] word embeddings [1, 1, h] in `dtype` on the model's device, computed once
    per model, device and dtype (E is frozen)."""
    emb = lm.embedding_matrix
    cache = lm.cache.setdefault("cls_sep", {})
    key = (emb.device, dtype)
    if key not in cache:
        with torch.no_grad():
            ids = (lm.cls_id, lm.cls_id if lm.sep_id is None else lm.sep_id)  # decoders: BOS, no [SEP]
            cache[key] = tuple(emb[i].detach().to(dtype).view(1, 1, -1).clone() for i in ids)
    return cache[key]


def sequence_embeds(lm: LoadedModel, pre_ln: Tensor) -> Tensor:
    """[CLS] x_1..x_l [SEP] in word-embedding space (decoders: BOS x_1..x_l).
    pre_ln: [batch, l, e] -> [batch, l+2, e] ([batch, l+1, e])."""
    batch = pre_ln.shape[0]
    cls, sep = cls_sep(lm, pre_ln.dtype)
    if lm.family.decoder:
        return torch.cat([cls.expand(batch, 1, -1), pre_ln], dim=1)
    return torch.cat([cls.expand(batch, 1, -1), pre_ln, sep.expand(batch, 1, -1)], dim=1)


def embed(lm: LoadedModel, word_embeds: Tensor) -> Tensor:
    """Embedding layer on word embeddings: + position + token-type-0, LayerNorm. [b, t, h] -> [b, t, h].
    Other families: the model's own embedding (and projection), read as the first layer's input."""
    if not lm.family.layerwise:
        with capture_dense(lm, 0) as captured:
            return model_forward(lm, word_embeds, 0, captured)[0]
    return lm.model.embeddings(inputs_embeds=word_embeds)


def forward(
    lm: LoadedModel, pre_ln: Tensor, position: int, depth: int, active: list[int] | None = None,
    captured: list[Tensor] | None = None, position_ids: Tensor | None = None,
) -> tuple[Tensor, list[Tensor]]:
    """Analysis-space sequence [b, t, h] and acts per layer 1..depth ([rows_i, h]) for pre-LN inputs
    [b, l, e]: BERT layer by layer (`run_layers`), other families by the model's own forward."""
    if lm.family.layerwise:
        hidden = embed(lm, sequence_embeds(lm, pre_ln))
        return hidden, run_layers(lm, hidden, position, depth, active, captured)
    if captured is None:
        with capture_dense(lm, position) as own:
            return forward(lm, pre_ln, position, depth, active, own, position_ids)
    analysis, acts = model_forward(lm, sequence_embeds(lm, pre_ln), depth, captured, position_ids)
    if active is not None:
        acts = [a[:n] for a, n in zip(acts, active)]
    return analysis, acts


def analysis_space(lm: LoadedModel, pre_ln: Tensor) -> Tensor:
    """The analysis-space vectors of the optimized tokens [b, l, h] for pre-LN inputs [b, l, e]."""
    return embed(lm, sequence_embeds(lm, pre_ln))[:, 1:1 + pre_ln.shape[1]]


@contextmanager
def capture_dense(lm: LoadedModel, position: int) -> Iterator[list[Tensor]]:
    """Forward hooks that append `layer.output.dense(...)[:, position]` ([batch, hidden]) per layer run."""
    captured = Captured()
    handles = register(lm, captured, position)  # BERT: `layer.output.dense`; others: ft_artifacts.families
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def run_layers(
    lm: LoadedModel, hidden: Tensor, position: int, depth: int, active: list[int] | None = None,
    captured: list[Tensor] | None = None,
) -> list[Tensor]:
    """Run encoder layers 1..depth on hidden [batch, seq, h]; return acts per layer, each [rows_i, h].

    `active[i]` (optional) is how many leading rows still need layer i+1: rows sorted by target
    depth, descending, let the batch shrink as it goes deeper. Rows past `active` are not computed.
    `captured`: the list of an enclosing `capture_dense(lm, position)` (hooks registered once for
    many forwards, as `optimize` does); without it, hooks are registered for this call alone.
    """
    if captured is None:
        with capture_dense(lm, position) as own:
            return run_layers(lm, hidden, position, depth, active, own)
    captured.clear()
    for i, layer in enumerate(lm.model.encoder.layer[:depth]):
        if active is not None:
            hidden = hidden[: active[i]]
        out = layer(hidden)
        hidden = out[0] if isinstance(out, tuple) else out
    return list(captured)


def activations(
    lm: LoadedModel, pre_ln: Tensor, position: int = 1, depth: int | None = None,
    position_ids: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Analysis-space sequence [b, l+2, h] and all activations [b, depth*h] for pre-LN inputs [b, l, h]."""
    analysis, acts = forward(lm, pre_ln, position, depth or lm.num_layers, position_ids=position_ids)
    return analysis, torch.cat(acts, dim=-1)


def token_activations(lm: LoadedModel, token_ids: Tensor) -> tuple[Tensor, Tensor]:
    """Each token alone as `[CLS] w [SEP]` (decoders: `BOS w`): analysis vectors [b, h] and activations
    [b, L*h] at position 1."""
    pre_ln = lm.embedding_matrix[token_ids].unsqueeze(1)
    frame = lm.family.scan_position_ids(token_ids, (lm.cls_id,), (lm.sep_id,))
    analysis, acts = activations(lm, pre_ln, position=1, position_ids=frame)
    return analysis[:, 1], acts
