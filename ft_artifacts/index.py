"""Vectors in, an exact cosine FAISS index out (IndexFlatIP over L2-normalized float32 rows).

Index files are untrusted input: `read_index` checks a file's size and header against the shape the
manifest says it must have before FAISS parses it (FAISS allocates whatever a header claims), and
checks afterwards that every row is unit length (or zero), so that its scores are cosines.
"""

from __future__ import annotations

import operator
import os
import struct

import numpy as np

from .errors import ArtifactError
from .files import atomic_path

INDEX_KIND = "IndexFlatIP"

# FAISS's writer format of a flat index (faiss/impl/index_write.cpp): fourcc, then write_index_header
# (d int32, ntotal int64, two int64 dummies, is_trained uint8, metric_type int32), then the codes as a
# vector: a uint64 count of floats followed by the float32 rows. Little-endian, no padding.
_HEADER = struct.Struct("<4siqqqBiQ")
_FOURCC = b"IxFI"
_KNOWN_FOURCC = {b"IxFI": "IndexFlatIP", b"IxF2": "IndexFlatL2", b"IxFl": "IndexFlat"}
_METRIC_INNER_PRODUCT = 0
_METRICS = {0: "inner product", 1: "L2"}
NORM_TOLERANCE = 1e-3


def index_file_size(dimension: int, rows: int) -> int:
    """Exact size in bytes of the file FAISS writes for an IndexFlatIP of `rows` vectors of `dimension`."""
    return _HEADER.size + 4 * dimension * rows


def _normalized(vectors: np.ndarray) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"expected a [n, dim] array of vectors, got shape {vectors.shape}")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, np.finfo(np.float32).tiny)


def build_index(vectors: np.ndarray):
    """Exact cosine index: row i of the index is row i of `vectors`.

    A row that is not finite (a diverged optimization) is stored as a zero row: cosine 0 with every
    query, and a file that `read_index` accepts.
    """
    import faiss

    with np.errstate(invalid="ignore", over="ignore"):
        normalized = _normalized(vectors)
    normalized[~np.isfinite(normalized).all(axis=1)] = 0.0
    index = faiss.IndexFlatIP(normalized.shape[1])
    index.add(normalized)
    return index


def search(index, queries: np.ndarray, k: int, normalized: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(cosines [n, k], ids [n, k]) of the k nearest rows to each query, best first. `normalized`: the queries
    are rows of an index (already L2-normalized by this module), searched as they are: normalizing again would
    change their last bits, and the answers would differ from those for the vectors they were made from."""
    queries = np.ascontiguousarray(queries, dtype=np.float32) if normalized else _normalized(queries)
    return index.search(queries, min(k, index.ntotal))


def write_index(index, path: str | os.PathLike, tmp_dir: str | os.PathLike | None = None) -> None:
    import faiss

    with atomic_path(path, tmp_dir=tmp_dir) as tmp:
        faiss.write_index(index, str(tmp))


def _refuse(path, problem: str) -> ArtifactError:
    return ArtifactError(f"{path}: {problem}; re-download or rebuild the artifact")


def _shape(path, dimension, rows) -> tuple[int, int]:
    try:
        dimension, rows = operator.index(dimension), operator.index(rows)  # ints, numpy ints; not floats
    except TypeError:
        dimension = rows = -1
    if dimension < 1 or rows < 0:
        raise _refuse(path, "cannot check the index against an invalid shape (rows and dimension must be whole "
                            "numbers, dimension at least 1)")
    return int(dimension), int(rows)


def check_index_file(path: str | os.PathLike, dimension: int, rows: int) -> None:
    """Refuse (ArtifactError, one line) a file that is not exactly the IndexFlatIP of `rows` vectors of
    `dimension` that FAISS would write. Reads only the header, so any claim in the file costs nothing."""
    dimension, rows = _shape(path, dimension, rows)
    expected_size = index_file_size(dimension, rows)
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            head = handle.read(_HEADER.size)
    except OSError as exc:
        raise _refuse(path, f"cannot read the index file ({exc.strerror or exc})") from exc
    if len(head) < _HEADER.size:
        raise _refuse(path, f"{size} bytes is too short for a FAISS index (expected {expected_size} bytes for "
                            f"{rows} rows of dimension {dimension})")
    fourcc, d, ntotal, _, _, _, metric, count = _HEADER.unpack(head)
    if fourcc != _FOURCC:
        kind = _KNOWN_FOURCC.get(fourcc)
        found = f"an {kind} (fourcc {fourcc.decode()})" if kind else f"not a FAISS flat index (starts with {fourcc!r})"
        raise _refuse(path, f"the file is {found}, expected an {INDEX_KIND}")
    if d != dimension:
        raise _refuse(path, f"index dimension is {d}, expected {dimension}")
    if ntotal != rows:
        raise _refuse(path, f"index holds {ntotal} rows, expected {rows}")
    if metric != _METRIC_INNER_PRODUCT:
        raise _refuse(path, f"index metric is {_METRICS.get(metric, f'#{metric}')}, expected inner product")
    if count != dimension * rows:
        raise _refuse(path, f"index header claims {count} stored floats, expected {dimension * rows} "
                            f"({rows} rows x {dimension})")
    if size != expected_size:
        raise _refuse(path, f"index file is {size} bytes, expected {expected_size} for {rows} rows of dimension "
                            f"{dimension}" + (" (truncated)" if size < expected_size else " (trailing bytes)"))


def read_index(path: str | os.PathLike, dimension: int, rows: int):
    """Read an exact cosine index that must hold `rows` unit-length vectors of `dimension`.

    The file is checked (size, header) before FAISS parses it, and its rows after: every row must
    have L2 norm within 1e-3 of 1, or be exactly zero. Anything else is an ArtifactError naming the file.
    """
    import faiss

    dimension, rows = _shape(path, dimension, rows)
    check_index_file(path, dimension, rows)
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _refuse(path, f"FAISS cannot read the index ({first})") from exc
    if type(index).__name__ != INDEX_KIND or index.d != dimension or index.ntotal != rows:
        raise _refuse(path, f"FAISS read an {type(index).__name__} of {index.ntotal} x {index.d}, expected an "
                            f"{INDEX_KIND} of {rows} x {dimension}")
    if rows:
        stored = faiss.rev_swig_ptr(index.get_xb(), rows * dimension).reshape(rows, dimension)
        _check_unit_rows(path, stored)
    return index


def read_index_row(path: str | os.PathLike, dimension: int, rows: int, row: int) -> np.ndarray:
    """Row `row` [dimension] of an exact cosine index file, read alone: the file is checked as `read_index`
    checks it (size and header), and the row must be unit length (or zero). A query by name needs only its
    own row: an atlas's neurons index is 113 MB."""
    dimension, rows = _shape(path, dimension, rows)
    check_index_file(path, dimension, rows)
    if not 0 <= row < rows:
        raise _refuse(path, f"row {row} is outside the index's {rows} rows")
    try:
        with open(path, "rb") as handle:
            handle.seek(_HEADER.size + 4 * dimension * row)
            data = handle.read(4 * dimension)
    except OSError as exc:
        raise _refuse(path, f"cannot read the index file ({exc.strerror or exc})") from exc
    if len(data) != 4 * dimension:
        raise _refuse(path, "the index file ended early")
    vector = np.frombuffer(data, dtype="<f4").astype(np.float32)
    _check_unit_rows(path, vector[None])
    return vector


def _check_unit_rows(path, stored: np.ndarray, elements: int = 1 << 22) -> None:
    """Norms a few MB at a time, summed in float32 by einsum (no float64 copy: 4x faster on a vocabulary): its
    rounding, under 1e-5 for any honest width, is far inside NORM_TOLERANCE."""
    chunk = max(1, elements // max(1, stored.shape[1]))
    bad, first, first_norm = 0, None, None
    for start in range(0, stored.shape[0], chunk):
        block = stored[start:start + chunk]
        with np.errstate(over="ignore", invalid="ignore"):
            norms = np.sqrt(np.einsum("ij,ij->i", block, block, dtype=np.float32)).astype(np.float64)
        wrong = ~((np.abs(norms - 1.0) <= NORM_TOLERANCE) | (norms == 0.0))
        if wrong.any():
            if first is None:
                first = start + int(np.argmax(wrong))
                first_norm = norms[first - start]
            bad += int(wrong.sum())
    if bad:
        raise _refuse(path, f"{bad} of {stored.shape[0]} rows are not unit length (row {first} has L2 norm "
                            f"{first_norm:.6g}), so its scores would not be cosines")
