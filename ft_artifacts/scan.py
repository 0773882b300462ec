"""A model in, the vocabulary scan out: every token alone as `[CLS] w [SEP]`, all L*H neurons at position 1.

From the V x (L*H) activation matrix come a_max and the most activating token of every neuron, and
each word's top-k neurons, absolute (largest a_{w,i}) or relative (largest a_{w,i} / a_i^max, the
paper's eq. 1).

Neurons with a_max <= 0 have no meaningful relative score (dividing by a non-positive maximum
ranks the *least* activating words highest), so relative selection never picks them; their count
is reported as `nonpositive_max`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .errors import ObjectiveError
from .hooks import token_activations
from .model import LoadedModel
from .naming import Neuron
from .settings import SELECTIONS, check_selection  # noqa: F401 - SELECTIONS re-exported

logger = logging.getLogger(__name__)
TOP_TOKENS = 10  # the scan's most activating tokens kept per neuron (neuron_stats.top_tokens)


@dataclass
class VocabScan:
    acts: np.ndarray  # [V, L*H] activation of every neuron for every token (float32 or float16, maybe memmap)
    a_max: np.ndarray  # [L*H] float32, computed in float32 before any storage cast
    argmax: np.ndarray  # [L*H] int64, the most activating token id
    analysis: np.ndarray  # [V, H] float32, each token's analysis-space vector (the index's vectors)
    hidden_size: int
    top_ids: np.ndarray | None = None  # [TOP_TOKENS, L*H] int64: each neuron's most activating tokens, best first
    top_acts: np.ndarray | None = None  # [TOP_TOKENS, L*H] float32: their activations

    @property
    def nonpositive_max(self) -> int:
        return int((self.a_max <= 0).sum())

    def scores(self, token_id: int, selection: str) -> np.ndarray:
        """Per-neuron score of one word [L*H]: a_{w,i} (absolute) or a_{w,i}/a_i^max (relative)."""
        check_selection(selection)
        row = np.asarray(self.acts[token_id], dtype=np.float32)
        if selection == "absolute":
            return row
        with np.errstate(divide="ignore", invalid="ignore"):  # relative
            return np.where(self.a_max > 0, row / self.a_max, -np.inf).astype(np.float32)

    def top_neurons(self, token_id: int, k: int, selection: str) -> list[Neuron]:
        """The word's k highest-scoring neurons, best first (ties broken by lower flat index)."""
        scores = self.scores(token_id, selection)
        if not 1 <= k <= int(np.isfinite(scores).sum()):
            raise ObjectiveError(f"k must lie in 1..{int(np.isfinite(scores).sum())} (got {k})")
        order = np.lexsort((np.arange(scores.size), -scores.astype(np.float64)))[:k]
        return [Neuron.from_flat(int(i), self.hidden_size) for i in order]


def scan_vocabulary(
    lm: LoadedModel,
    batch_size: int = 1024,
    storage_dtype=np.float32,
    path: str | Path | None = None,
    callback: Callable[[int, int], None] | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> VocabScan:
    """Run every vocabulary item through the model in batches; memory stays bounded by `batch_size`
    plus the result (a memory map when `path` is given)."""
    vocab, width = lm.vocab_size, lm.num_neurons
    shape = (vocab, width)
    if path is not None:
        acts = np.lib.format.open_memmap(str(path), mode="w+", dtype=storage_dtype, shape=shape)
    else:
        acts = np.empty(shape, dtype=storage_dtype)
    analysis = np.empty((vocab, lm.hidden_size), dtype=np.float32)
    a_max = np.full(width, -np.inf, dtype=np.float32)
    argmax = np.zeros(width, dtype=np.int64)
    top = min(TOP_TOKENS, vocab)  # a running top-k over the batches, kept on the scan's device
    top_acts = torch.full((top, width), -torch.inf, device=lm.device)
    top_ids = torch.zeros((top, width), dtype=torch.int64, device=lm.device)
    autocast = torch.autocast(lm.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None)
    for start in range(0, vocab, batch_size):
        ids = torch.arange(start, min(start + batch_size, vocab), device=lm.device)
        with torch.no_grad(), autocast:
            vecs, batch_acts = token_activations(lm, ids)
        batch_acts = batch_acts.float()
        best, where = batch_acts.max(dim=0)
        best, where = best.cpu().numpy(), where.cpu().numpy() + start
        better = best > a_max  # strict: the first token reaching the max wins ties
        a_max[better], argmax[better] = best[better], where[better]
        top_acts, pick = torch.cat([top_acts, batch_acts]).topk(top, dim=0)
        top_ids = torch.cat([top_ids, ids[:, None].expand_as(batch_acts)]).gather(0, pick)
        acts[start:start + len(ids)] = batch_acts.cpu().numpy().astype(storage_dtype)
        analysis[start:start + len(ids)] = vecs.float().cpu().numpy()
        if callback:
            callback(start + len(ids), vocab)
    if path is not None:
        acts.flush()
    return VocabScan(acts=acts, a_max=a_max, argmax=argmax, analysis=analysis, hidden_size=lm.hidden_size,
                     top_ids=top_ids.cpu().numpy(), top_acts=top_acts.cpu().numpy())
