"""Vectors in, an exact cosine FAISS index out (IndexFlatIP over L2-normalized float32 rows)."""

from __future__ import annotations

import os

import numpy as np

from .files import atomic_path


def _normalized(vectors: np.ndarray) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"expected a [n, dim] array of vectors, got shape {vectors.shape}")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, np.finfo(np.float32).tiny)


def build_index(vectors: np.ndarray):
    """Exact cosine index: row i of the index is row i of `vectors`."""
    import faiss

    normalized = _normalized(vectors)
    index = faiss.IndexFlatIP(normalized.shape[1])
    index.add(normalized)
    return index


def search(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(cosines [n, k], ids [n, k]) of the k nearest rows to each query, best first."""
    return index.search(_normalized(queries), min(k, index.ntotal))


def write_index(index, path: str | os.PathLike, tmp_dir=None) -> None:
    import faiss

    with atomic_path(path, tmp_dir=tmp_dir) as tmp:
        faiss.write_index(index, str(tmp))


def read_index(path: str | os.PathLike, dimension: int, rows: int):
    """Read a FAISS index file (FAISS's own binary format; nothing is unpickled)."""
    import faiss

    return faiss.read_index(str(path))
