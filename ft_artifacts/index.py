"""Vectors in, an exact cosine FAISS index out (IndexFlatIP over L2-normalized float32 rows),
plus atomic file writes shared by everything that writes an artifact."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np


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


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_index(index, path: str | os.PathLike) -> None:
    import faiss

    with atomic_path(path) as tmp:
        faiss.write_index(index, str(tmp))


def read_index(path: str | os.PathLike):
    """Read a FAISS index file (FAISS's own binary format; nothing is unpickled)."""
    import faiss

    return faiss.read_index(str(path))
