"""The artifact folder a real build writes: layout, schema, checksums, card, plain-`datasets` reading, the FAISS
index, and the correctness of every stored row against a fresh computation (resuming: test_build.py).

One tiny artifact is built per session (artifact_fixtures.tiny_artifact).
"""

from __future__ import annotations

import importlib.metadata
import json
from dataclasses import replace
import platform
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml

pytest.register_assert_rewrite("artifact_fixtures")  # before the import below: its helpers assert too

from artifact_fixtures import (  # noqa: E402
    HIDDEN, LAYERS, WORDS, assert_same_neighbours, last_json, run_python, sha256_bytes, subprocess_env, tiny_vocab,
)
from ft_artifacts.schema import CONFIGS, DEFAULT_CONFIG, features  # noqa: E402

pytest_plugins = ["artifact_fixtures"]

INDEXES = ("index/vocab.faiss", "index/neurons.faiss", "index/word_groups.faiss")


def data_files(root: Path, config: str) -> list[Path]:
    return sorted((root / "data" / config).glob("train-*.parquet"))


def read_config(root: Path, config: str):
    """One config's rows as a pyarrow Table, read with pyarrow alone (no ft_artifacts code)."""
    import pyarrow as pa

    return pa.concat_tables([pq.read_table(str(p)) for p in data_files(root, config)])


def vectors(table, column: str = "vector") -> np.ndarray:
    return np.asarray(table.column(column).to_pylist(), dtype=np.float32)


def front_matter(card: str) -> dict:
    assert card.startswith("---\n"), card[:80]
    head, sep, _ = card[4:].partition("\n---\n")
    assert sep, "the card's YAML front matter is not closed by ---"
    return yaml.safe_load(head)


# --- layout ------------------------------------------------------------------------------------------------------

def test_folder_holds_exactly_the_documented_files(tiny_artifact: Path) -> None:
    figures = [f"figures/{name}.{kind}" for name in ("activation_by_layer", "closest_cosine_by_layer", "pca",
                                                     "group_top_k") for kind in ("png", "svg")]
    expected = {"README.md", "build_info.json", *INDEXES, *figures}
    for config in CONFIGS:
        files = data_files(tiny_artifact, config)
        assert files, f"no data/{config}/train-*.parquet"
        expected |= {p.relative_to(tiny_artifact).as_posix() for p in files}
    present = {p.relative_to(tiny_artifact).as_posix() for p in tiny_artifact.rglob("*") if p.is_file()}
    assert present == expected  # nothing else: no .partial work folder, no *.tmp left behind
    card = (tiny_artifact / "README.md").read_text()
    for figure in sorted(p for p in expected if p.startswith("figures/") and p.endswith(".png")):
        assert f"]({figure})" in card, figure  # the card shows every figure


def test_row_counts(tiny_artifact: Path, tiny_config, tiny_lm) -> None:
    import faiss

    info = json.loads((tiny_artifact / "build_info.json").read_text())
    words = tiny_config.random_words + tiny_config.curated_words
    expected = {
        "neurons": round(tiny_config.neuron_fraction * HIDDEN) * LAYERS,
        "word_groups": words * len(tiny_config.selections) * len(tiny_config.ks),
        "vocabulary": len(tiny_vocab()),
        "neuron_stats": LAYERS * HIDDEN,
    }
    assert expected["word_groups"] == 5 * 2 * 4 and tiny_lm.vocab_size == expected["vocabulary"]
    for config, rows in expected.items():
        assert read_config(tiny_artifact, config).num_rows == rows, config
        assert info["configs"][config]["rows"] == rows, config
    assert faiss.read_index(str(tiny_artifact / "index/vocab.faiss")).ntotal == expected["vocabulary"]
    for config in ("neurons", "word_groups"):  # one index per optimized config (format 3)
        assert faiss.read_index(str(tiny_artifact / f"index/{config}.faiss")).ntotal == expected[config], config
    # 10% of each layer's neurons, drawn per layer; neuron_stats marks exactly those as sampled.
    neurons = read_config(tiny_artifact, "neurons").column("neuron").to_pylist()
    stats = read_config(tiny_artifact, "neuron_stats").to_pydict()
    assert sorted(n for n, s in zip(stats["neuron"], stats["sampled"]) if s) == sorted(neurons)
    assert [sum(n.startswith(f"L{layer}.") for n in neurons) for layer in range(1, LAYERS + 1)] == (
        [round(0.1 * HIDDEN)] * LAYERS)


def test_schema_round_trip_with_plain_datasets(tiny_artifact: Path, tmp_path: Path) -> None:
    import datasets

    for config in CONFIGS:
        files = [str(p) for p in data_files(tiny_artifact, config)]
        ds = datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=str(tmp_path / "cache"))
        assert ds.features == features(config), config
        assert list(ds.features) == list(features(config)), config  # column order too
        assert ds.num_rows == read_config(tiny_artifact, config).num_rows
        for column in ("vector", "pre_ln_vector"):
            if column in ds.features:
                assert set(map(len, ds[column])) == {HIDDEN}, (config, column)


# --- build_info.json -----------------------------------------------------------------------------------------------

def test_build_info_checksums_cover_every_other_file(tiny_artifact: Path) -> None:
    info = json.loads((tiny_artifact / "build_info.json").read_text())
    on_disk = {p.relative_to(tiny_artifact).as_posix(): p for p in tiny_artifact.rglob("*") if p.is_file()}
    assert set(info["files"]) == set(on_disk) - {"build_info.json"}
    for rel, recorded in info["files"].items():
        data = on_disk[rel].read_bytes()
        assert recorded == {"sha256": sha256_bytes(data), "size": len(data)}, rel


def test_build_info_records_versions_settings_and_seeds(tiny_artifact: Path, tiny_config, tiny_bert: Path) -> None:
    from ft_artifacts.builders.presets import BuildConfig
    from ft_artifacts.builders.sampling import curated_words
    from ft_artifacts.optimize import row_seed

    info = json.loads((tiny_artifact / "build_info.json").read_text())
    # Every hyperparameter, incl. all seeds, and the precision the steps ran in (the CPU default: fp32).
    assert tiny_config.precision is None
    assert info["settings"] == json.loads(json.dumps(dict(tiny_config.to_dict(), precision="fp32")))
    assert BuildConfig.from_dict(info["settings"]) == replace(tiny_config, precision="fp32")
    for seed in ("neuron_seed", "word_seed"):
        assert info["settings"][seed] == getattr(tiny_config, seed)
    assert info["settings"]["optim"]["seed"] == tiny_config.optim.seed
    assert info["model"] == {
        "id": tiny_bert.name, "source": str(tiny_bert), "num_layers": LAYERS, "hidden_size": HIDDEN,
        "vocab_size": len(tiny_vocab()), "family": "bert",
        "revision": "sha256:" + sha256_bytes((tiny_bert / "model.safetensors").read_bytes()),
    }
    versions = info["versions"]
    assert versions["python"] == platform.python_version()
    for dist in ("ft-artifacts", "torch", "transformers", "datasets", "faiss-cpu", "numpy", "pyarrow",
                 "huggingface_hub"):
        assert versions[dist] == importlib.metadata.version(dist), dist
    # The target words: the random draw, then the first curated words (paper 5.1).
    assert len(info["words"]) == 5 and info["words"][3:] == curated_words()[:2] == ["time", "people"]
    # Random words are whole Latin-letter words: never [unusedN], ## pieces, digits or punctuation.
    assert set(info["words"][:3]) <= set(WORDS) - {"time", "people"}
    groups = read_config(tiny_artifact, "word_groups").to_pydict()
    assert sorted(set(groups["word"])) == sorted(info["words"])
    # Every optimized row carries its optimizer settings and its own seed.
    optim = tiny_config.optim
    for config, label in (("neurons", "neuron"), ("word_groups", "group")):
        rows = read_config(tiny_artifact, config).to_pydict()
        assert rows["seed"] == [row_seed(optim.seed, name) for name in rows[label]], config
        assert set(rows["steps"]) == {optim.steps} and set(rows["method"]) == {optim.method}
        assert set(rows["lr"]) == {np.float32(optim.lr)} and set(rows["init_std"]) == {np.float32(optim.init_std)}
        assert {len(t) for t in rows["activation_trace"]} == {len(range(0, optim.steps, optim.trace_every))}


# --- the dataset card ------------------------------------------------------------------------------------------------

SIZE_CATEGORIES = {"n<1K": (0, 1_000), "1K<n<10K": (1_000, 10_000), "10K<n<100K": (10_000, 100_000),
                   "100K<n<1M": (100_000, 1_000_000), "1M<n<10M": (1_000_000, 10_000_000)}


def test_card_front_matter(tiny_artifact: Path) -> None:
    card = (tiny_artifact / "README.md").read_text(encoding="utf-8")
    meta = front_matter(card)
    info = json.loads((tiny_artifact / "build_info.json").read_text())
    assert isinstance(meta["license"], str) and meta["license"]
    assert info["model"]["id"] in meta["pretty_name"]
    assert isinstance(meta["tags"], list) and meta["tags"] and all(isinstance(t, str) for t in meta["tags"])
    (category,) = meta["size_categories"]
    low, high = SIZE_CATEGORIES[category]
    assert low <= sum(c["rows"] for c in info["configs"].values()) < high
    configs = {c["config_name"]: c for c in meta["configs"]}
    assert sorted(configs) == sorted(CONFIGS) and len(meta["configs"]) == len(CONFIGS)
    assert [name for name, c in configs.items() if c.get("default") is True] == [DEFAULT_CONFIG]
    for name, entry in configs.items():
        (split,) = entry["data_files"]
        assert split["split"] == "train"
        paths = split["path"] if isinstance(split["path"], list) else [split["path"]]
        assert not any(set("*?[") & set(p) for p in paths), paths  # exact files, never globs
        assert [tiny_artifact / p for p in paths] == data_files(tiny_artifact, name) and paths, name
        assert paths == info["configs"][name]["files"]
    # The body names real rows (the usage examples must work when copied).
    neuron = read_config(tiny_artifact, "neurons").column("neuron")[0].as_py()
    rows = read_config(tiny_artifact, "word_groups").select(["word", "selection", "k"]).to_pylist()
    assert f'nearest_words(neuron="{neuron}"' in card
    # A real group (which one: test_the_example_group_follows_the_stored_evaluation_not_the_row_order).
    assert any(f'nearest_words(group=("{r["word"]}", "{r["selection"]}", {r["k"]}))' in card for r in rows)
    for name in CONFIGS:
        assert f"| `{name}` | {info['configs'][name]['rows']} |" in card


# --- plain `datasets` reads it -------------------------------------------------------------------------------------

PLAIN_DATASETS = """
import hashlib, json, sys
import datasets
out = {}
for name in sys.argv[2:]:
    ds = datasets.load_dataset(sys.argv[1], name, split="train")
    out[name] = {"rows": ds.num_rows, "columns": list(ds.features), "features": ds.features.to_dict(),
                 "digest": hashlib.sha256(json.dumps(ds.to_list()).encode()).hexdigest()}
default = datasets.load_dataset(sys.argv[1], split="train")
out["default"] = hashlib.sha256(json.dumps(default.to_list()).encode()).hexdigest()
out["ft_artifacts_imported"] = sorted(m for m in sys.modules if m.startswith("ft_artifacts"))
print(json.dumps(out))
"""


def test_plain_datasets_load_dataset_reads_every_config(tiny_artifact: Path, tmp_path: Path) -> None:
    from datasets import Features

    proc = run_python(PLAIN_DATASETS, tiny_artifact, *CONFIGS, cwd=tmp_path,
                      env=subprocess_env(HF_HOME=str(tmp_path / "hf"), HF_DATASETS_CACHE=str(tmp_path / "cache")))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = last_json(proc.stdout)
    assert out["ft_artifacts_imported"] == []
    for name in CONFIGS:
        table = read_config(tiny_artifact, name)
        assert out[name]["rows"] == table.num_rows
        assert out[name]["columns"] == list(features(name))
        assert Features.from_dict(out[name]["features"]) == features(name)
        assert out[name]["digest"] == sha256_bytes(json.dumps(table.to_pylist()).encode()), name
    assert out["default"] == out[DEFAULT_CONFIG]["digest"]


# --- the FAISS index ------------------------------------------------------------------------------------------------

def test_vocab_index_row_i_is_vocabulary_row_i(tiny_artifact: Path, tmp_path: Path) -> None:
    import datasets
    import faiss

    vocab = vectors(read_config(tiny_artifact, "vocabulary"))
    index = faiss.read_index(str(tiny_artifact / "index/vocab.faiss"))
    assert index.d == HIDDEN
    normalized = vocab / np.linalg.norm(vocab, axis=1, keepdims=True)
    np.testing.assert_allclose(index.reconstruct_n(0, index.ntotal), normalized, rtol=0, atol=1e-6)

    # Through plain `datasets`: the published index attaches to the vocabulary config's `vector` column.
    ds = datasets.load_dataset("parquet", data_files=[str(p) for p in data_files(tiny_artifact, "vocabulary")],
                               split="train", cache_dir=str(tmp_path / "cache"))
    ds.load_faiss_index("vector", str(tiny_artifact / "index/vocab.faiss"))
    queries = vectors(read_config(tiny_artifact, "neurons"))[:8]
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    found = ds.search_batch("vector", queries.astype(np.float32), k=10)
    for query, got_ids, got_cos in zip(queries, found.total_indices, found.total_scores):
        assert_same_neighbours(got_ids, got_cos, query, vocab, 10)
    tokens = read_config(tiny_artifact, "vocabulary").column("token").to_pylist()
    assert ds[[int(i) for i in found.total_indices[0]]]["token"] == [tokens[int(i)] for i in found.total_indices[0]]


@pytest.mark.parametrize("config,name", [("neurons", "neuron"), ("word_groups", "group")])
def test_each_optimized_config_has_its_own_index_for_plain_datasets(tiny_artifact: Path, tmp_path: Path, config,
                                                                    name) -> None:
    """One index per optimized config (the wiki_dpr convention): `Dataset.load_faiss_index` takes it as it is
    (FAISS's size must equal the config's rows), and its answers are that config's rows by cosine."""
    import datasets

    ds = datasets.load_dataset("parquet", data_files=[str(p) for p in data_files(tiny_artifact, config)],
                               split="train", cache_dir=str(tmp_path / "cache"))
    ds.load_faiss_index("vector", str(tiny_artifact / f"index/{config}.faiss"))
    rows = vectors(read_config(tiny_artifact, config))
    diverged = np.asarray(read_config(tiny_artifact, config).column("diverged").to_pylist(), dtype=bool)
    rows[diverged] = 0.0
    query = vectors(read_config(tiny_artifact, "vocabulary"))[3]
    query = (query / np.linalg.norm(query)).astype(np.float32)
    scores, found = ds.get_nearest_examples("vector", query, k=5)
    ids = [int(i) for i in ds.search("vector", query, k=5).indices]
    assert found[name] == [ds[i][name] for i in ids]
    assert_same_neighbours(ids, scores, query, rows, 5)


# --- every stored row against a fresh computation -----------------------------------------------------------------

@pytest.fixture(scope="module")
def fresh_scan(tiny_lm):
    from ft_artifacts.scan import scan_vocabulary

    return scan_vocabulary(tiny_lm)


def top_k_oracle(acts: np.ndarray, a_max: np.ndarray, word_id: int, k: int, selection: str) -> list[str]:
    """The paper's selection, written out: best first, ties by lower flat index; relative skips a_max <= 0."""
    row = acts[word_id].astype(np.float64)
    if selection == "relative":
        with np.errstate(divide="ignore", invalid="ignore"):
            row = np.where(a_max > 0, row / a_max.astype(np.float64), -np.inf)
    order = np.argsort(-row, kind="stable")[:k]
    return [f"L{i // HIDDEN + 1}.N{i % HIDDEN}" for i in order]


def flat(name: str) -> int:
    layer, index = name[1:].split(".N")
    return (int(layer) - 1) * HIDDEN + int(index)


def test_group_rows_match_a_fresh_vocabulary_scan(tiny_artifact: Path, tiny_lm, fresh_scan) -> None:
    from ft_artifacts.hooks import token_activations

    groups = read_config(tiny_artifact, "word_groups").to_pylist()
    acts = np.asarray(fresh_scan.acts, dtype=np.float32)
    vocab = vectors(read_config(tiny_artifact, "vocabulary"))
    for row in groups:
        word_id = tiny_lm.token_id(row["word"])
        assert row["group"] == f"{row['word']}/{row['selection']}/{row['k']}"
        assert row["target_token_id"] == word_id and len(row["neurons"]) == row["k"]
        assert row["neurons"] == top_k_oracle(acts, fresh_scan.a_max, word_id, row["k"], row["selection"]), row["group"]
        cols = [flat(n) for n in row["neurons"]]
        # target_activation: the group objective (mean over I) on the word alone, from a fresh forward.
        with torch.no_grad():
            _, alone = token_activations(tiny_lm, torch.tensor([word_id]))
        expected = float(alone[0, cols].double().mean())
        assert row["target_activation"] == pytest.approx(expected, rel=1e-5, abs=1e-5)
        # The most activating vocabulary item for this objective.
        values = acts[:, cols].astype(np.float64).mean(axis=1)
        assert row["most_activating_token_id"] == int(values.argmax())
        assert row["most_activating_token"] == tiny_vocab()[int(values.argmax())]
        assert row["most_activating_activation"] == pytest.approx(values.max(), rel=1e-5, abs=1e-5)
        # The target word's rank and cosine among the vocabulary, by brute force.
        vec = np.asarray(row["vector"], dtype=np.float64)
        sims = (vocab @ vec) / (np.linalg.norm(vocab, axis=1) * np.linalg.norm(vec))
        assert row["target_cosine"] == pytest.approx(sims[word_id], abs=1e-5)
        assert 1 + int((sims > sims[word_id] + 1e-6).sum()) <= row["target_rank"] <= int(
            (sims >= sims[word_id] - 1e-6).sum())
    # The nearest tokens stored with each optimized row equal a float64 brute force.
    for config in ("neurons", "word_groups"):
        table = read_config(tiny_artifact, config)
        for query, nearest in zip(vectors(table), table.column("nearest").to_pylist()):
            ids = [tiny_lm.token_id(n["token"]) for n in nearest]
            assert_same_neighbours(ids, [n["cosine"] for n in nearest], query, vocab, len(nearest))


def test_neuron_rows_match_a_fresh_vocabulary_scan(tiny_artifact: Path, fresh_scan) -> None:
    acts = np.asarray(fresh_scan.acts, dtype=np.float32)
    for row in read_config(tiny_artifact, "neurons").to_pylist():
        col = flat(row["neuron"])
        assert (row["layer"], row["index"]) == (col // HIDDEN + 1, col % HIDDEN)
        assert row["most_activating_token_id"] == int(acts[:, col].argmax())
        assert row["most_activating_activation"] == pytest.approx(float(acts[:, col].max()), rel=1e-5, abs=1e-5)
    stats = read_config(tiny_artifact, "neuron_stats").to_pydict()
    np.testing.assert_allclose(stats["a_max"], acts.max(axis=0), rtol=1e-5, atol=1e-5)
    assert stats["most_activating_token_id"] == acts.argmax(axis=0).tolist()


def test_activation_is_a_fresh_forward_of_the_stored_input(tiny_artifact: Path, tiny_lm) -> None:
    from ft_artifacts.hooks import activations

    for config in ("neurons", "word_groups"):
        table = read_config(tiny_artifact, config)
        rows = table.to_pylist()
        pre_ln = torch.from_numpy(vectors(table, "pre_ln_vector")).unsqueeze(1)  # [n, 1, h]
        with torch.no_grad():
            analysis, acts = activations(tiny_lm, pre_ln)
        analysis, acts = analysis[:, 1].numpy(), acts.double().numpy()
        # `vector` is the analysis space: the embedding output at position 1 for that pre-LN input.
        np.testing.assert_allclose(vectors(table), analysis, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(table.column("norm").to_numpy(), np.linalg.norm(analysis, axis=1), rtol=1e-5)
        for row, act in zip(rows, acts):
            names = [row["neuron"]] if config == "neurons" else row["neurons"]
            expected = act[[flat(n) for n in names]].mean()
            scale = max(1.0, np.abs(act).max())
            assert row["activation"] == pytest.approx(expected, rel=1e-5, abs=1e-5 * scale), names[0]
        # The trace's first entry is the objective at the seeded initial input; optimization raised it.
        start = np.array([t[0] for t in table.column("activation_trace").to_pylist()])
        final = table.column("activation").to_numpy()
        assert np.mean(final > start) > 0.5, config


def test_the_cards_example_group_comes_from_the_best_recovered_configuration(tiny_artifact: Path) -> None:
    """The card's usage snippet queries a group of the (selection, k) with the highest top-1 share in the stored
    evaluation, and, where that configuration recovered any target, a group whose target is its nearest token."""
    import re

    from ft_artifacts.manifest import read_manifest

    evaluation = read_manifest(tiny_artifact).evaluation
    card = (tiny_artifact / "README.md").read_text(encoding="utf-8")
    word, selection, k = re.search(r"art\.nearest_words\(group=\(([\"'])(.*?)\1, ([\"'])(.*?)\3, (\d+)\)\)",
                                   card).group(2, 4, 5)
    chosen = evaluation.group(selection, int(k))
    assert chosen is not None
    assert chosen.top1_share == max(g.top1_share for g in evaluation.groups)
    groups = read_config(tiny_artifact, "word_groups").to_pydict()
    ranks = {w: r for w, s, n, r in zip(groups["word"], groups["selection"], groups["k"], groups["target_rank"])
             if (s, n) == (selection, int(k))}
    assert word in ranks and (ranks[word] == 1 or 1 not in ranks.values())


def test_the_example_group_follows_the_stored_evaluation_not_the_row_order(tiny_artifact: Path) -> None:
    """With the best top-1 share in a configuration whose rows come last, the example is from that configuration,
    and is its row whose target is the nearest token, not the table's first such row."""
    from dataclasses import replace as replaced

    from ft_artifacts.manifest import read_manifest
    from ft_artifacts.pack import _example_group

    manifest = read_manifest(tiny_artifact)
    evaluation = manifest.evaluation
    shares = {("absolute", 10): 0.0, ("relative", 250): 0.5}
    groups = [replaced(g, top1_share=shares.get((g.selection, g.k), 0.0)) for g in evaluation.groups]
    manifest.results = replaced(evaluation, groups=groups).to_dict()
    table = {"word": ["a", "b", "c", "d"], "selection": ["absolute", "absolute", "relative", "relative"],
             "k": [10, 10, 250, 250], "target_rank": [1, 1, 3, 1]}
    assert _example_group(manifest, table) == ("d", "relative", 250)

