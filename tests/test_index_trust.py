"""FAISS index files are untrusted bytes: their size and header are checked against the expected shape
before FAISS parses them, and their rows must be unit length afterwards. Hostile files are crafted
with a valid structure (so only these checks stand between them and FAISS)."""

from __future__ import annotations

import json
import struct
import sys
import subprocess

import numpy as np
import pytest

from ft_artifacts.errors import ArtifactError
from ft_artifacts.index import (INDEX_KIND, build_index, check_index_file, index_file_size, read_index,
                                read_index_row, search, write_index)
from ft_artifacts.metrics import brute_force_topk

DIM, ROWS = 8, 5


def _header(fourcc: bytes, d: int, ntotal: int, metric: int, count: int) -> bytes:
    # FAISS's flat-index layout: fourcc, d, ntotal, two dummies, is_trained, metric, codes count.
    return struct.pack("<4siqqqBiQ", fourcc, d, ntotal, 1 << 20, 1 << 20, 1, metric, count)


def _unit_rows(n: int, d: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _faiss_file(tmp_path, index, name="index.faiss"):
    import faiss

    path = tmp_path / name
    faiss.write_index(index, str(path))
    return path


@pytest.mark.parametrize("dim,rows", [(1, 0), (1, 1), (3, 7), (8, 5), (16, 100), (384, 33)])
def test_index_file_size_is_what_faiss_writes(tmp_path, dim, rows):
    import faiss

    index = faiss.IndexFlatIP(dim)
    if rows:
        index.add(_unit_rows(rows, dim))
    path = _faiss_file(tmp_path, index)
    assert path.stat().st_size == index_file_size(dim, rows)
    check_index_file(path, dim, rows)  # FAISS's own output passes the header check
    assert INDEX_KIND == type(index).__name__


def test_valid_index_round_trips_and_equals_brute_force(tmp_path):
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((200, 24)).astype(np.float32) * rng.uniform(0.1, 30, (200, 1)).astype(np.float32)
    vectors[13] = 0.0  # a zero row is allowed
    path = tmp_path / "vectors.faiss"
    write_index(build_index(vectors), path)
    index = read_index(path, 24, 200)
    assert (index.ntotal, index.d) == (200, 24)
    queries = rng.standard_normal((6, 24)).astype(np.float32)
    cosines, ids = search(index, queries, 10)
    want_cos, want_ids = brute_force_topk(queries, vectors, 10)
    np.testing.assert_allclose(cosines, want_cos, atol=1e-5, rtol=0)
    assert (ids == want_ids).mean() > 0.95  # equal up to near-ties (cosines already agree)
    np.testing.assert_array_equal(ids[:, 0], want_ids[:, 0])


def test_empty_index_round_trips(tmp_path):
    path = tmp_path / "empty.faiss"
    write_index(build_index(np.zeros((0, 4), dtype=np.float32)), path)
    assert read_index(path, 4, 0).ntotal == 0


def test_non_finite_rows_are_stored_as_zero_rows(tmp_path):
    vectors = _unit_rows(4, DIM)
    vectors[1, 3] = np.nan
    vectors[2, 0] = np.inf
    path = tmp_path / "diverged.faiss"
    write_index(build_index(vectors), path)
    index = read_index(path, DIM, 4)
    assert not index.reconstruct(1).any() and not index.reconstruct(2).any()
    cosines, ids = search(index, vectors[[0]], 4)
    assert ids[0, 0] == 0 and np.all(np.isfinite(cosines))


# Each hostile file: (bytes, expected shape passed to the reader, words the refusal must contain).
def _hostile(case: str, tmp_path):
    import faiss

    if case == "header claiming 2^30 floats":
        return _header(b"IxFI", DIM, ROWS, 0, 1 << 30) + _unit_rows(ROWS, DIM).tobytes(), "claims 1073741824"
    if case == "L2 index of the right shape":
        index = faiss.IndexFlatL2(DIM)
        index.add(_unit_rows(ROWS, DIM))
        return _faiss_file(tmp_path, index).read_bytes(), "IndexFlatL2"
    if case == "extra rows":
        index = faiss.IndexFlatIP(DIM)
        index.add(_unit_rows(ROWS + 1, DIM))
        return _faiss_file(tmp_path, index).read_bytes(), f"holds {ROWS + 1} rows, expected {ROWS}"
    if case == "missing rows":
        index = faiss.IndexFlatIP(DIM)
        index.add(_unit_rows(ROWS - 1, DIM))
        return _faiss_file(tmp_path, index).read_bytes(), f"holds {ROWS - 1} rows, expected {ROWS}"
    if case == "wrong dimension, same float count":
        index = faiss.IndexFlatIP(DIM // 2)
        index.add(_unit_rows(ROWS * 2, DIM // 2))
        data = bytearray(_faiss_file(tmp_path, index).read_bytes())
        data[12:20] = struct.pack("<q", ROWS)  # ntotal matches the manifest too
        return bytes(data), f"dimension is {DIM // 2}, expected {DIM}"
    if case == "inner-product fourcc with an L2 metric":
        return _header(b"IxFI", DIM, ROWS, 1, DIM * ROWS) + _unit_rows(ROWS, DIM).tobytes(), "metric is L2"
    if case == "random bytes of the exact size":
        return np.random.default_rng(3).bytes(index_file_size(DIM, ROWS)), "not a FAISS flat index"
    if case == "truncated file":
        index = faiss.IndexFlatIP(DIM)
        index.add(_unit_rows(ROWS, DIM))
        return _faiss_file(tmp_path, index).read_bytes()[:-12], "truncated"
    if case == "trailing bytes":
        index = faiss.IndexFlatIP(DIM)
        index.add(_unit_rows(ROWS, DIM))
        return _faiss_file(tmp_path, index).read_bytes() + b"\0" * 4, "trailing bytes"
    if case == "shorter than a header":
        return b"IxFI\x08\x00", "too short"
    if case == "empty file":
        return b"", "too short"
    raise AssertionError(case)


HOSTILE = ["header claiming 2^30 floats", "L2 index of the right shape", "extra rows", "missing rows",
           "wrong dimension, same float count", "inner-product fourcc with an L2 metric",
           "random bytes of the exact size", "truncated file", "trailing bytes", "shorter than a header", "empty file"]


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_index_file_is_refused_before_faiss_reads_it(case, tmp_path):
    data, problem = _hostile(case, tmp_path)
    path = tmp_path / "index" / "vocab.faiss"
    path.parent.mkdir()
    path.write_bytes(data)
    for check in (check_index_file, read_index):
        with pytest.raises(ArtifactError) as err:
            check(path, DIM, ROWS)
        message = str(err.value)
        assert problem in message, message
        assert str(path) in message and "\n" not in message


@pytest.mark.parametrize("scale", [18.7, 0.5, 1.01])
def test_non_normalized_inner_product_index_is_refused(tmp_path, scale):
    import faiss

    vectors = _unit_rows(ROWS, DIM)
    vectors[3] *= scale
    index = faiss.IndexFlatIP(DIM)
    index.add(vectors)
    path = _faiss_file(tmp_path, index)
    check_index_file(path, DIM, ROWS)  # structurally it is exactly what was expected
    with pytest.raises(ArtifactError) as err:
        read_index(path, DIM, ROWS)
    message = str(err.value)
    assert "not unit length" in message and "row 3" in message and f"{scale:.6g}" in message, message
    assert "\n" not in message


def test_nan_rows_are_refused(tmp_path):
    import faiss

    vectors = _unit_rows(ROWS, DIM)
    vectors[0] = np.nan
    index = faiss.IndexFlatIP(DIM)
    index.add(vectors)
    with pytest.raises(ArtifactError, match="not unit length"):
        read_index(_faiss_file(tmp_path, index), DIM, ROWS)


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(ArtifactError, match="cannot read the index file"):
        read_index(tmp_path / "nope.faiss", DIM, ROWS)


# In a fresh interpreter: max RSS before and after refusing a ~100-byte file whose header claims 2^30
# floats (4 GiB). FAISS itself would allocate them before noticing the file is short.
MEMORY = """
import json, resource, sys
import numpy as np
from ft_artifacts.errors import ArtifactError
from ft_artifacts.index import read_index
import faiss
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    read_index(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
    outcome = "accepted"
except ArtifactError as err:
    outcome = str(err)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"outcome": outcome, "grew_kib": after - before}))
"""


@pytest.mark.parametrize("claim", ["count", "rows"])
def test_huge_header_claim_keeps_memory_bounded(tmp_path, claim):
    path = tmp_path / "hostile.faiss"
    if claim == "count":
        data = _header(b"IxFI", DIM, ROWS, 0, 1 << 30) + _unit_rows(ROWS, DIM).tobytes()
    else:  # the header and the expected shape agree on 2^27 rows of 8 (4 GiB), the file is tiny
        data = _header(b"IxFI", DIM, 1 << 27, 0, DIM << 27) + _unit_rows(ROWS, DIM).tobytes()
    path.write_bytes(data)
    assert len(data) < 300
    rows = ROWS if claim == "count" else 1 << 27
    proc = subprocess.run([sys.executable, "-c", MEMORY, str(path), str(DIM), str(rows)], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["outcome"] != "accepted" and str(path) in out["outcome"], out
    assert out["grew_kib"] < 8 * 1024, out  # a few MB at most, not GBs


@pytest.mark.parametrize("dim,rows", [(0, 5), (8, -1), (8.0, 5), (8, "5")])
def test_invalid_expected_shape_is_refused(tmp_path, dim, rows):
    import faiss

    index = faiss.IndexFlatIP(DIM)
    index.add(_unit_rows(ROWS, DIM))
    with pytest.raises(ArtifactError, match="invalid shape"):
        read_index(_faiss_file(tmp_path, index), dim, rows)


def test_norms_are_checked_chunk_by_chunk(tmp_path):
    from ft_artifacts import index as index_module

    vectors = _unit_rows(1000, DIM)
    vectors[997] *= 2
    stored = np.ascontiguousarray(vectors)
    with pytest.raises(ArtifactError, match="row 997 has L2 norm 2"):
        index_module._check_unit_rows(tmp_path / "x.faiss", stored, elements=DIM * 7)  # 7 rows per chunk
    index_module._check_unit_rows(tmp_path / "x.faiss", _unit_rows(1000, DIM), elements=DIM * 7)


def test_numpy_integer_shape_is_accepted(tmp_path):
    import faiss

    index = faiss.IndexFlatIP(DIM)
    index.add(_unit_rows(ROWS, DIM))
    assert read_index(_faiss_file(tmp_path, index), np.int64(DIM), np.int32(ROWS)).ntotal == ROWS


def test_one_row_read_alone_is_the_row_faiss_stores_and_is_checked(tmp_path):
    """read_index_row (a named query's direction) gives exactly FAISS's stored row, after the same header and
    size checks as read_index, and refuses a row that is not unit length or lies outside the index."""
    vectors = np.random.default_rng(3).standard_normal((7, DIM)).astype(np.float32) * 5
    vectors[4] = 0.0
    path = tmp_path / "rows.faiss"
    write_index(build_index(vectors), path)
    stored = read_index(path, DIM, 7)
    for row in range(7):
        np.testing.assert_array_equal(read_index_row(path, DIM, 7, row), stored.reconstruct(row))
    for bad_row in (-1, 7):
        with pytest.raises(ArtifactError, match="outside the index"):
            read_index_row(path, DIM, 7, bad_row)
    with pytest.raises(ArtifactError, match="expected 8"):
        read_index_row(path, DIM, 8, 0)  # the header is checked as read_index checks it
    data = bytearray(path.read_bytes())
    start = index_file_size(DIM, 2)  # row 2 begins here
    data[start:start + 4] = struct.pack("<f", 3.0)
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="not unit length"):
        read_index_row(path, DIM, 7, 2)
    np.testing.assert_array_equal(read_index_row(path, DIM, 7, 1), stored.reconstruct(1))
