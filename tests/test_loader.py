"""`ft_artifacts.load` on the real tiny artifact: subsets, exact nearest-neighbour queries (against a float64
brute force over vectors read straight from the parquet files), integrity checks and clean errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.register_assert_rewrite("artifact_fixtures")  # before the import below: its helpers assert too

from artifact_fixtures import HIDDEN, LAYERS, assert_same_neighbours, tiny_vocab  # noqa: E402

import ft_artifacts  # noqa: E402
from ft_artifacts.errors import ArtifactError, ChecksumError, FTError, NeuronNameError  # noqa: E402
from ft_artifacts.naming import Group, parse_neuron  # noqa: E402
from ft_artifacts.schema import CONFIGS, features  # noqa: E402

pytest_plugins = ["artifact_fixtures"]

NEURONS_FILE = "data/neurons/train-00000-of-00001.parquet"


def table(root: Path, config: str):
    return pa.concat_tables([pq.read_table(str(p)) for p in sorted((root / "data" / config).glob("train-*.parquet"))])


def column_vectors(root: Path, config: str) -> np.ndarray:
    return np.asarray(table(root, config).column("vector").to_pylist(), dtype=np.float32)


@pytest.fixture(scope="module")
def reference(tiny_artifact):
    """Everything the brute force needs, read with pyarrow alone (no ft_artifacts code)."""
    groups = table(tiny_artifact, "word_groups").to_pydict()
    neurons = table(tiny_artifact, "neurons").to_pydict()
    vocab = table(tiny_artifact, "vocabulary").to_pydict()
    stats = table(tiny_artifact, "neuron_stats").to_pydict()
    return {
        "vocab": np.asarray(vocab["vector"], dtype=np.float32),
        "tokens": vocab["token"],
        "neurons": dict(zip(neurons["neuron"], np.asarray(neurons["vector"], dtype=np.float32))),
        "groups": dict(zip(groups["group"], np.asarray(groups["vector"], dtype=np.float32))),
        "optimized": np.concatenate([np.asarray(neurons["vector"], dtype=np.float32),
                                     np.asarray(groups["vector"], dtype=np.float32)]),
        "optimized_names": neurons["neuron"] + groups["group"],
        "unsampled": [n for n, s in zip(stats["neuron"], stats["sampled"]) if not s],
        "untargeted": next(w for w in vocab["token"] if w.isalpha() and w not in set(groups["word"])),
    }


def check_words(hits: list[dict], query: np.ndarray, ref: dict, k: int) -> None:
    assert [set(h) for h in hits] == [{"token", "cosine", "token_id"}] * len(hits)
    assert [h["token"] for h in hits] == [ref["tokens"][h["token_id"]] for h in hits]
    assert_same_neighbours([h["token_id"] for h in hits], [h["cosine"] for h in hits], query, ref["vocab"], k)


def check_near(hits: list[dict], query: np.ndarray, ref: dict, k: int) -> None:
    index = {name: i for i, name in enumerate(ref["optimized_names"])}
    for h in hits:
        assert h["config"] == ("neurons" if h["name"] in ref["neurons"] else "word_groups"), h
    assert_same_neighbours([index[h["name"]] for h in hits], [h["cosine"] for h in hits], query, ref["optimized"], k)


def test_load_gives_datasets_with_the_schema(tiny_loaded, tiny_artifact) -> None:
    import datasets

    info = json.loads((tiny_artifact / "build_info.json").read_text())
    for name in CONFIGS:
        subset = tiny_loaded.subset(name)
        assert isinstance(subset, datasets.Dataset)
        assert subset.features == features(name) and len(subset) == info["configs"][name]["rows"]
        assert subset.to_dict() == table(tiny_artifact, name).to_pydict()
        assert getattr(tiny_loaded, name) is subset
    assert tiny_loaded.manifest.model.hidden_size == HIDDEN
    assert tiny_loaded.verify() == {rel: "ok" for rel in info["files"]}


def test_nearest_words_equals_brute_force(tiny_loaded, reference) -> None:
    names = list(reference["neurons"])
    for name in (names[0], names[len(names) // 2], names[-1]):
        for k in (1, 10):
            check_words(tiny_loaded.nearest_words(neuron=name, k=k), reference["neurons"][name], reference, k)
            assert tiny_loaded.nearest_words(parse_neuron(name), k=k) == tiny_loaded.nearest_words(neuron=name, k=k)
    for key in ("people/relative/10", "time/absolute/450", "people/relative/450"):
        word, selection, k_group = key.split("/")
        by_key = tiny_loaded.nearest_words(group=key, k=10)
        check_words(by_key, reference["groups"][key], reference, 10)
        assert tiny_loaded.nearest_words(group=(word, selection, int(k_group)), k=10) == by_key
        assert tiny_loaded.nearest_words(Group(word, selection, int(k_group)), k=10) == by_key
    people = reference["vocab"][reference["tokens"].index("people")]
    hits = tiny_loaded.nearest_words(word="people", k=10)
    check_words(hits, people, reference, 10)
    # More than the vocabulary: every token, once.
    hits = tiny_loaded.nearest_words(word="people", k=len(reference["tokens"]) + 5)
    assert sorted(h["token_id"] for h in hits) == list(range(len(reference["tokens"])))


def test_named_queries_take_their_direction_from_the_index(tiny_artifact, reference) -> None:
    """A neuron, group or word query searches with its row of its config's index (the same vector, unit
    length), so it reads no vector column: a word query costs the vocabulary's index alone. Its answers are
    the stored vector's, as the brute-force check above shows, and agree with passing that vector."""
    art = ft_artifacts.load(tiny_artifact)
    hits = art.nearest_words(word="people", k=10)
    near = art.neurons_near(group="people/relative/10", k=6)
    assert not art._matrices  # no config's vector column was read
    check_words(hits, reference["vocab"][reference["tokens"].index("people")], reference, 10)
    check_near(near, reference["groups"]["people/relative/10"], reference, 6)
    assert art.nearest_words(vectors=art.vector(word="people")[0], k=10) == hits  # bit for bit
    assert art.neurons_near(vectors=art.vector(group="people/relative/10")[0], k=6) == near


def test_nearest_words_for_raw_vectors(tiny_loaded, reference) -> None:
    rng = np.random.default_rng(0)
    one = rng.standard_normal(HIDDEN)
    check_words(tiny_loaded.nearest_words(one, k=7), one, reference, 7)
    check_words(tiny_loaded.nearest_words(one.tolist(), k=7), one, reference, 7)
    batch = np.concatenate([rng.standard_normal((3, HIDDEN)), reference["vocab"][[5, 17]]]).astype(np.float32)
    results = tiny_loaded.nearest_words(batch, k=5)
    assert len(results) == len(batch)
    for hits, query in zip(results, batch):
        check_words(hits, query, reference, 5)
    # A single-row batch is still a batch.
    assert tiny_loaded.nearest_words(batch[:1], k=5) == [results[0]]


def test_punctuation_token_with_a_slash_is_a_word(tiny_loaded, reference) -> None:
    assert "/" in reference["tokens"]
    hits = tiny_loaded.nearest_words(word="/", k=4)
    check_words(hits, reference["vocab"][reference["tokens"].index("/")], reference, 4)


def test_neurons_near_equals_brute_force(tiny_loaded, reference) -> None:
    for word in ("people", "time", "house"):
        query = reference["vocab"][reference["tokens"].index(word)]
        check_near(tiny_loaded.neurons_near(word=word, k=10), query, reference, 10)
    name = list(reference["neurons"])[3]
    hits = tiny_loaded.neurons_near(neuron=name, k=5)
    check_near(hits, reference["neurons"][name], reference, 5)
    assert hits[0]["name"] == name  # its own optimized input is its nearest
    batch = np.random.default_rng(1).standard_normal((2, HIDDEN))
    for hits, query in zip(tiny_loaded.neurons_near(batch, k=6), batch):
        check_near(hits, query, reference, 6)
    assert {h["config"] for h in tiny_loaded.neurons_near(word="people", k=len(reference["optimized_names"]))} == {
        "neurons", "word_groups"}


@pytest.fixture
def copied(tiny_artifact, tmp_path) -> Path:
    """A private copy of the shared artifact, free to damage."""
    return Path(shutil.copytree(tiny_artifact, tmp_path / "copy"))


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("rel", [NEURONS_FILE, "index/vocab.faiss", "README.md"])
def test_a_changed_byte_is_a_checksum_error_naming_the_file(copied: Path, rel: str) -> None:
    flip_byte(copied / rel)
    with pytest.raises(ChecksumError) as err:
        ft_artifacts.load(copied)
    assert rel in str(err.value) and "\n" not in str(err.value)
    ft_artifacts.load(copied, verify=False)  # opening without verification still works


def test_missing_indexes_are_rebuilt_with_the_same_answers(copied: Path, tiny_loaded, reference) -> None:
    (copied / "index/vocab.faiss").unlink()
    (copied / "index/neurons.faiss").unlink()
    (copied / "index/word_groups.faiss").unlink()
    art = ft_artifacts.load(copied)
    status = art.verify()
    assert {status[f"index/{n}.faiss"] for n in ("vocab", "neurons", "word_groups")} == {"missing (rebuilt on use)"}
    name = list(reference["neurons"])[0]
    hits = art.nearest_words(neuron=name, k=10)
    check_words(hits, reference["neurons"][name], reference, 10)
    assert hits == tiny_loaded.nearest_words(neuron=name, k=10)
    check_near(art.neurons_near(word="people", k=8), reference["vocab"][reference["tokens"].index("people")],
               reference, 8)
    assert not (copied / "index/vocab.faiss").exists()  # reading never writes into the artifact


def test_missing_data_file_is_an_artifact_error(copied: Path) -> None:
    (copied / NEURONS_FILE).unlink()
    with pytest.raises(ArtifactError, match="data/neurons/train-00000-of-00001.parquet is missing"):
        ft_artifacts.load(copied)
    art = ft_artifacts.load(copied, verify=False)
    with pytest.raises(ArtifactError, match="config 'neurons' is missing"):
        art.neurons
    assert len(art.vocabulary) == len(tiny_vocab())  # the other configs still open


def test_unreadable_data_file_without_verification_is_an_artifact_error(copied: Path) -> None:
    (copied / NEURONS_FILE).write_bytes(b"not a parquet file")
    with pytest.raises(ArtifactError, match="cannot read .* of config 'neurons'"):
        ft_artifacts.load(copied, verify=False).neurons


def bad_queries(reference) -> list:
    """(label, keyword arguments, message): every query that must be refused in one line."""
    return [
        ("unsampled neuron", {"neuron": reference["unsampled"][0]}, "not in this artifact's sample"),
        ("layer out of range", {"neuron": f"L{LAYERS + 1}.N0"}, "layer 4 is out of range"),
        ("layer zero", {"neuron": "L0.N3"}, "layer 0 is out of range"),
        ("index out of range", {"neuron": f"L1.N{HIDDEN}"}, f"index {HIDDEN} is out of range"),
        ("a word as a neuron", {"neuron": "people"}, "malformed neuron name"),
        ("a neuron as a word", {"word": "L1.N0"}, "not a single token of this model's vocabulary"),
        ("a group key as a word", {"word": "people/relative/10"}, "not a single token"),
        ("unknown group", {"group": "people/relative/11"}, "group is not in this artifact"),
        ("group of an untargeted word", {"group": f"{reference['untargeted']}/relative/10"}, "group is not in this artifact"),
        ("unknown group tuple", {"group": ("people", "sideways", 10)}, "group is not in this artifact"),
        ("two-part group", {"group": ("people", "relative")}, "malformed group"),
        ("a word as a group", {"group": "people"}, "malformed group"),
        ("unknown word", {"word": "zebra"}, "not a single token of this model's vocabulary"),
        ("positional string", {"query": "people"}, "a string is ambiguous"),
        ("two queries", {"word": "people", "neuron": "L1.N0"}, "exactly one query"),
        ("no query", {}, "exactly one query"),
        ("vector too long", {"vectors": np.zeros(HIDDEN + 1)}, f"shape \\[{HIDDEN}\\] or \\[n, {HIDDEN}\\]"),
        ("batch too narrow", {"vectors": np.zeros((2, HIDDEN - 1))}, "got \\(2, 159\\)"),
        ("3-d array", {"vectors": np.zeros((2, 1, HIDDEN))}, "got \\(2, 1, 160\\)"),
        ("NaN vector", {"vectors": np.full(HIDDEN, np.nan)}, "NaN"),
        ("list of names", {"vectors": ["L1.N0", "L2.N0"]}, "cannot use"),
    ]


def test_bad_queries_are_clean_errors(tiny_loaded, reference) -> None:
    for label, kwargs, needle in bad_queries(reference):
        for method in (tiny_loaded.nearest_words, tiny_loaded.neurons_near):
            with pytest.raises(FTError, match=needle) as err:
                method(k=3, **kwargs)
            assert "\n" not in str(err.value), label
    with pytest.raises(NeuronNameError):
        tiny_loaded.nearest_words(neuron=f"L{LAYERS + 1}.N0")
    for k in (0, -2, 2.5, True):
        with pytest.raises(ArtifactError, match="k must be a positive integer"):
            tiny_loaded.nearest_words(word="people", k=k)


def test_unknown_config_is_an_artifact_error(tiny_loaded) -> None:
    with pytest.raises(ArtifactError, match="unknown config 'neuron'; this artifact has neurons"):
        tiny_loaded.subset("neuron")


def test_not_an_artifact(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="build_info.json is missing"):
        ft_artifacts.load(tmp_path)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ArtifactError, match="is not an ft-artifacts artifact"):
        ft_artifacts.load(tmp_path / "file.txt")
    with pytest.raises(ArtifactError, match="no such artifact folder"):
        ft_artifacts.load(tmp_path / "does-not-exist")


@pytest.mark.parametrize("content, needle", [
    (b"{\"model\": {", "build_info.json is corrupt"), (b"\xff\xfe garbage", "build_info.json is corrupt"),
    (b"[]", "the top level is not an object"), (b"{}", "'format_version' is missing"),
    (b"{\"format_version\": 2, \"model\": 1}", "'files' is missing"),
], ids=["truncated", "not-utf8", "a-list", "empty-object", "wrong-types"])
def test_corrupt_build_info_is_an_artifact_error(copied: Path, content: bytes, needle: str) -> None:
    (copied / "build_info.json").write_bytes(content)
    with pytest.raises(ArtifactError, match=needle) as err:
        ft_artifacts.load(copied)
    assert "\n" not in str(err.value)
