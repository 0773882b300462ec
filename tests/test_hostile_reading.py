"""Hostile artifacts whose build_info.json was edited to match: parquet footers are checked against the
manifest before decoding (rows, schema, types, sizes), string bombs are refused before they decode,
JSON is parsed within size and depth limits, manifest paths are literal and strict, symlinked folders
are refused, and a file swapped after verification is never what is read."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from artifact_fixtures import sha256_bytes

pytest_plugins = ["artifact_fixtures"]

VOCAB = "data/vocabulary/train-00000-of-00001.parquet"


@pytest.fixture
def art(tiny_artifact: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_artifact, tmp_path / "art"))


def reseal(root: Path, rel: str, data: bytes, rows: int | None = None) -> None:
    """Write `data` as `rel` and edit build_info.json to list it (and `rows`), as a hostile publisher would."""
    from ft_artifacts.manifest import ConfigEntry, FileEntry, read_manifest

    (root / rel).write_bytes(data)
    manifest = read_manifest(root)
    manifest.files[rel] = FileEntry(sha256_bytes(data), len(data))
    if rows is not None:
        config = rel.split("/")[1]
        manifest.configs[config] = ConfigEntry(rows, manifest.configs[config].files)
    (root / "build_info.json").write_text(manifest.to_json())


def parquet_bytes(table: pa.Table, **kwargs) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **kwargs)
    return sink.getvalue().to_pybytes()


def with_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, values)


def refused(root: Path, query=lambda a: a.nearest_words(word="people", k=3)) -> str:
    import ft_artifacts
    from ft_artifacts.errors import ArtifactError

    with pytest.raises(ArtifactError) as info:
        query(ft_artifacts.load(root))
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


@pytest.mark.parametrize("kind", ["list<string>", "string"])
def test_a_vector_column_of_the_wrong_type_is_one_line(art: Path, kind: str) -> None:
    table = pq.read_table(art / VOCAB)
    vectors = table.column("vector").to_pylist()
    wrong = pa.array([[str(x) for x in v] for v in vectors]) if kind == "list<string>" else \
        pa.array([json.dumps(v) for v in vectors])
    reseal(art, VOCAB, parquet_bytes(with_column(table, "vector", wrong)))
    message = refused(art)
    assert f"{VOCAB}: not the vocabulary schema: column 'vector' is {kind}, expected list<float>" in message


def test_a_footer_claiming_more_rows_than_listed_is_refused(art: Path) -> None:
    table = pq.read_table(art / VOCAB)
    reseal(art, VOCAB, parquet_bytes(pa.concat_tables([table, table])))
    assert "claims 578 rows, more than the 289 that vocabulary lists" in refused(art)


def test_huge_vectors_are_refused_from_the_footer(art: Path) -> None:
    """Rows of 100,000 zeros compress to almost nothing, and would decode to 115 MB."""
    table = pq.read_table(art / VOCAB)
    huge = pa.array([[0.0] * 100_000] * table.num_rows, pa.list_(pa.float32()))
    data = parquet_bytes(with_column(table, "vector", huge), compression="zstd")
    assert len(data) < 2 << 20
    reseal(art, VOCAB, data)
    assert "column 'vector.list.element' claims 28900000 values, more than 289 rows can hold" in refused(art)


MEMORY = """
import json, resource, sys
import ft_artifacts
from ft_artifacts.errors import ArtifactError
art = ft_artifacts.load(sys.argv[1])
art.manifest, art.vocab_index  # imports and the index: the same for honest and hostile artifacts
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    art.nearest_words(word=sys.argv[2], k=3)
    outcome = "accepted"
except ArtifactError as err:
    outcome = str(err)
print(json.dumps({"outcome": outcome, "grew_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before}))
"""


def peak_growth(root: Path, word: str, cwd: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", MEMORY, str(root), word], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env={**os.environ, "FT_ARTIFACTS_CACHE": str(cwd / "cache")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("size,caught_by", [(2 << 20, "footer"), (900 << 10, "dense size")])
def test_a_string_bomb_is_refused_within_a_small_multiple_of_honest_memory(tiny_artifact: Path, art: Path,
                                                                            tmp_path: Path, size, caught_by) -> None:
    """One huge token, dictionary-encoded and repeated in every row: a few hundred KB of parquet that
    would decode to hundreds of MB (2 MiB: its dictionary alone is over the footer's bound; 900 KiB:
    within it, so the dense size is what refuses it)."""
    table = pq.read_table(art / VOCAB)
    bomb = pa.array(["a" * size] * table.num_rows)
    data = parquet_bytes(with_column(table, "token", bomb), compression="zstd", use_dictionary=True)
    assert len(data) < 1 << 20 and size * table.num_rows > 250 << 20
    reseal(art, VOCAB, data)
    honest = peak_growth(tiny_artifact, "people", tmp_path)
    hostile = peak_growth(art, "a" * 10, tmp_path)
    assert honest["outcome"] == "accepted" and hostile["outcome"] != "accepted", (honest, hostile)
    assert "column 'token" in hostile["outcome"] and "decode to" in hostile["outcome"], hostile
    assert hostile["grew_kib"] < max(4 * honest["grew_kib"], 16 * 1024), (honest, hostile)


def test_a_deeply_nested_manifest_is_one_line(art: Path) -> None:
    from ft_artifacts.errors import ArtifactError
    from ft_artifacts.manifest import read_manifest

    info = art / "build_info.json"
    data = json.loads(info.read_text())
    text = json.dumps(data)[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}"
    info.write_text(text)
    with pytest.raises(ArtifactError, match="nested deeper than 32 levels"):
        read_manifest(art)


def test_an_oversized_manifest_is_refused_before_parsing(art: Path) -> None:
    from ft_artifacts.errors import ArtifactError
    from ft_artifacts.manifest import read_manifest

    info = art / "build_info.json"
    data = json.loads(info.read_text())
    data["results"]["padding"] = "x" * (9 << 20)
    info.write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="larger than 8 MiB"):
        read_manifest(art)


@pytest.mark.parametrize("path,why", [
    ("*", "control or pattern characters"),
    ("data/neurons/*.parquet", "control or pattern characters"),
    ("data/[a-z]", "control or pattern characters"),
    ("data/forged\nError: all good", "control or pattern characters"),
    ("data/\x1b]0;owned\x07", "control or pattern characters"),
    ("data/" + "n" * 256, "longer than 1024 bytes or has a component longer than 255"),
    ("/".join(["data"] + ["abcdefgh"] * 130), "longer than 1024 bytes"),
])
def test_manifest_paths_are_literal_and_strict(art: Path, path: str, why: str) -> None:
    from ft_artifacts.errors import ArtifactError
    from ft_artifacts.manifest import read_manifest

    info = art / "build_info.json"
    data = json.loads(info.read_text())
    data["files"][path] = {"sha256": "0" * 64, "size": 1}
    info.write_text(json.dumps(data))
    with pytest.raises(ArtifactError) as error:
        read_manifest(art)
    message = str(error.value)
    assert why in message and "\n" not in message and "\x1b" not in message and "\x07" not in message


def test_an_unlisted_file_behind_a_symlinked_data_folder_is_refused(art: Path, tmp_path: Path) -> None:
    real = tmp_path / "elsewhere"
    shutil.move(str(art / "data/vocabulary"), real)
    (real / "unlisted.parquet").write_bytes((real / "train-00000-of-00001.parquet").read_bytes())
    (art / "data/vocabulary").symlink_to(real, target_is_directory=True)
    assert "data/vocabulary in " in refused(art) and "symbolic link" in refused(art)


def test_a_file_swapped_after_verification_is_not_what_is_read(art: Path, tiny_loaded) -> None:
    import ft_artifacts

    loaded = ft_artifacts.load(art)
    want = tiny_loaded.nearest_words(word="people", k=5)
    table = pq.read_table(art / VOCAB)
    vectors = table.column("vector").to_pylist()
    flipped = pa.array(vectors[1:] + vectors[:1], pa.list_(pa.float32()))  # every token gets its neighbour's
    swapped = art / "swapped.parquet"
    swapped.write_bytes(parquet_bytes(with_column(table, "vector", flipped)))
    os.replace(swapped, art / VOCAB)  # a valid file of the right shape, other values, after load() verified
    (art / "index/vocab.faiss").unlink()  # so the vectors are read from the parquet to rebuild it
    assert loaded.nearest_words(word="people", k=5) == want
    assert ft_artifacts.load(art, verify=False).nearest_words(word="people", k=5) != want  # what the path holds now
    with pytest.raises(Exception, match="does not match the sha256"):
        ft_artifacts.load(art)


@pytest.mark.parametrize("entries", [["a", "bbb", None, "cccccc", "", "ünï"], ["x"], []])
@pytest.mark.parametrize("slice_from", [0, 1])
def test_dictionary_strings_decode_as_pyarrow_does_within_their_bound(entries, slice_from) -> None:
    """String columns are read dictionary-encoded, their decoded size checked, then decoded from the buffers
    (parquet_bounds.dense_strings): every index, null index, null entry and slice gives pyarrow's own answer, and a
    small dictionary repeated past the bound is refused before any decoding."""
    from ft_artifacts.errors import ArtifactError
    from ft_artifacts.parquet_bounds import SLACK_BYTES, STRING_BYTES, dense_strings

    dictionary = pa.array(entries, pa.string())
    indices = [None, *range(len(entries)), *range(len(entries))[::-1], None] if entries else [None, None]
    array = pa.DictionaryArray.from_arrays(pa.array(indices, pa.int32()), dictionary).slice(slice_from)
    column = pa.chunked_array([array, array.slice(2)])
    got = dense_strings(column, "neurons", "neuron", rows=len(column))
    assert got.type == pa.string() and got.to_pylist() == column.cast(pa.string()).to_pylist()
    for chunk in got.chunks:
        chunk.validate(full=True)
    bomb = pa.DictionaryArray.from_arrays(pa.array([0] * 4, pa.int32()), pa.array(["x" * (SLACK_BYTES + STRING_BYTES)]))
    with pytest.raises(ArtifactError, match="would decode to"):
        dense_strings(pa.chunked_array([bomb]), "neurons", "neuron", rows=1)
    outside = pa.DictionaryArray.from_buffers(pa.dictionary(pa.int32(), pa.string()), 2,
                                              [None, pa.array([0, len(entries)], pa.int32()).buffers()[1]], dictionary)
    with pytest.raises(ArtifactError, match="indices outside its dictionary"):  # never read past the dictionary
        dense_strings(pa.chunked_array([outside]), "neurons", "neuron", rows=2)
