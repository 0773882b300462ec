"""Vectors in, cosine neighbours, ranks and norms out (exact brute force, the reference for FAISS)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def normalize(vectors: Tensor) -> Tensor:
    """L2-normalize rows; zero rows stay zero."""
    return vectors / vectors.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(vectors.dtype).tiny)


def cosine_topk(queries: Tensor, keys: Tensor, k: int, chunk: int = 4096) -> tuple[Tensor, Tensor]:
    """Top-k cosine of each query [n, h] against keys [V, h]: (cosines [n, k], ids [n, k]), best first."""
    keys_n = normalize(keys)
    k = min(k, keys.shape[0])
    values, ids = [], []
    for start in range(0, queries.shape[0], chunk):
        sims = normalize(queries[start:start + chunk].to(keys.dtype)) @ keys_n.T
        v, i = sims.topk(k, dim=-1)
        values.append(v)
        ids.append(i)
    return torch.cat(values), torch.cat(ids)


def cosine_to(queries: Tensor, keys: Tensor, ids: Tensor) -> Tensor:
    """Cosine of query j [n, h] with keys[ids[j]]: [n]."""
    return (normalize(queries.to(keys.dtype)) * normalize(keys[ids])).sum(-1)


def rank_of(queries: Tensor, keys: Tensor, target_ids: Tensor) -> Tensor:
    """1-based rank of keys[target_ids[j]] among all keys by cosine to query j: [n] (1 = nearest)."""
    sims = normalize(queries.to(keys.dtype)) @ normalize(keys).T
    own = sims.gather(1, target_ids.view(-1, 1))
    return (sims > own).sum(-1) + 1


def brute_force_topk(queries: np.ndarray, keys: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Float64 numpy reference: (cosines [n, k], ids [n, k]); ties broken by lower id."""
    q = queries.astype(np.float64)
    x = keys.astype(np.float64)
    q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-300)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-300)
    sims = q @ x.T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, order, axis=1), order
