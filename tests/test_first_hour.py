"""What a new user meets first, on the tiny artifact and the tiny BERT (real models, real parquet, real FAISS):
errors that say what to do (the same in the API and the CLI), `info --neurons/--words`, `skip_special`,
strict JSON, full help, the cached vocabulary scan, textualize's warnings and `--keep best`, the card's
metadata, `__version__`, and reading without torch."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.register_assert_rewrite("artifact_fixtures")  # before the import below: its helpers assert too

from artifact_fixtures import LAYERS, run_python, subprocess_env  # noqa: E402
import ft_artifacts  # noqa: E402
from ft_artifacts.cli import main  # noqa: E402
from ft_artifacts.errors import FTError  # noqa: E402

pytest_plugins = ["artifact_fixtures"]


def strict_json(text: str):
    def refuse(name):
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def api_error(loaded, **kwargs) -> str:
    with pytest.raises(FTError) as err:
        loaded.nearest_words(**kwargs)
    return str(err.value)


def cli_error(artifact, *args) -> str:
    result = cli("query", artifact, *args)
    assert result.exit_code == 1 and "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    return line.removeprefix("Error: ")


# --- errors say what to do, the same in the API and the CLI -------------------------------------------------------

def test_word_hints_casing_and_pieces_in_api_and_cli(tiny_artifact, tiny_loaded):
    casing = api_error(tiny_loaded, word="House")
    assert "the model is uncased; did you mean `house`?" in casing
    assert cli_error(tiny_artifact, "--word", "House") == casing
    pieces = api_error(tiny_loaded, word="houses")
    assert "`houses` is 2 tokens: `house`, `##s`; pass `vectors=`" in pieces
    assert cli_error(tiny_artifact, "--word", "houses") == pieces
    assert "neuron name" in api_error(tiny_loaded, word="L1.N0")


def test_word_pieces_match_the_real_tokenizer(tiny_bert):
    from transformers import AutoTokenizer

    from ft_artifacts.words import pieces

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert))
    vocab = tokenizer.get_vocab()
    for word in ("houses", "Crowded", "redness", "house-boat", "king's", "kingdom", "zzz", "Ünited"):
        assert pieces(word, vocab) == tokenizer.tokenize(word), word


def test_the_model_gives_the_same_hint(tiny_lm, tiny_loaded):
    with pytest.raises(FTError) as err:
        tiny_lm.token_id("House")
    assert str(err.value).endswith(api_error(tiny_loaded, word="House"))


def test_group_errors_list_what_exists(tiny_artifact, tiny_loaded):
    word = tiny_loaded.manifest.words[0]
    ks = sorted({int(g.rsplit("/", 2)[2]) for g in tiny_loaded.word_groups["group"]})
    message = api_error(tiny_loaded, group=(word, "relative", 11))
    assert f"relative k={', '.join(map(str, ks))}" in message and "absolute k=" in message
    assert cli_error(tiny_artifact, "--group", word, "--group-size", "11") == message
    bare = api_error(tiny_loaded, group=word)
    assert f"group=({word!r}, 'relative', 250)" in bare and f"word={word!r}" in bare
    unknown = api_error(tiny_loaded, group=("zebra", "relative", ks[0]))
    assert "'zebra' is not one of its" in unknown and "info ARTIFACT --words" in unknown


def test_neuron_errors_say_how_to_list_them(tiny_artifact, tiny_loaded):
    sampled = set(tiny_loaded.neurons["neuron"])
    unsampled = next(r["neuron"] for r in tiny_loaded.neuron_stats if r["neuron"] not in sampled)
    message = api_error(tiny_loaded, neuron=unsampled)
    assert "--neurons` lists them all" in message
    layer = unsampled.partition(".")[0]
    assert next(n for n in tiny_loaded.neurons["neuron"] if n.startswith(layer + ".")) in message
    assert cli_error(tiny_artifact, "--neuron", unsampled) == message


def test_a_wrong_keyword_names_the_public_method(tiny_loaded):
    for method in ("nearest_words", "neurons_near"):
        with pytest.raises(TypeError, match=rf"Artifact\.{method}\(\) got an unexpected keyword argument 'neuron_name'"):
            getattr(tiny_loaded, method)(neuron_name="L1.N0")


def test_info_lists_neurons_and_words(tiny_artifact, tiny_loaded):
    listed = strict_json(cli("info", tiny_artifact, "--neurons", "--words", "--json").stdout)
    assert listed["neurons"] == list(tiny_loaded.neurons["neuron"])
    groups = [g.rsplit("/", 2) for g in tiny_loaded.word_groups["group"]]
    assert listed["words"] == sorted({w for w, _, _ in groups})
    assert {s: set(ks) for s, ks in listed["groups"].items()} == {
        s: {int(k) for _, t, k in groups if t == s} for _, s, _ in groups}
    text = cli("info", tiny_artifact, "--neurons").stdout
    assert all(name in text for name in listed["neurons"])
    for neuron in listed["neurons"][:3]:  # what it lists, query takes
        assert cli("query", tiny_artifact, "--neuron", neuron).exit_code == 0


# --- skip_special ----------------------------------------------------------------------------------------------------

def test_skip_special_leaves_out_bracketed_tokens_and_is_exact_otherwise(tiny_artifact, tiny_loaded):
    tokens = tiny_loaded.vocabulary["token"]
    special = [i for i, t in enumerate(tokens) if t.startswith("[") and t.endswith("]")]
    assert len(special) >= 10
    query = np.asarray(tiny_loaded.vocabulary[special[0]]["vector"], dtype=np.float32)  # [PAD]'s own vector
    plain = tiny_loaded.nearest_words(vectors=query, k=5)
    assert plain[0]["token"] == tokens[special[0]]
    skipped = tiny_loaded.nearest_words(vectors=query, k=5, skip_special=True)
    keys = np.asarray(tiny_loaded.vocabulary["vector"], dtype=np.float64)
    cos = keys @ query / (np.linalg.norm(keys, axis=1) * np.linalg.norm(query))
    cos[special] = -np.inf
    want = [tokens[i] for i in np.argsort(-cos, kind="stable")[:5]]
    assert [h["token"] for h in skipped] == want
    out = strict_json(cli("query", tiny_artifact, "--word", tokens[special[0]], "--skip-special", "--json").stdout)
    assert len(out) == 10 and not any(h["token"] in {tokens[i] for i in special} for h in out)


# --- strict JSON and help ------------------------------------------------------------------------------------------

def test_a_diverged_row_is_strict_json_with_nulls(tiny_folder):
    result = cli("textualize", "L1.N3", "--model", tiny_folder, "--device", "cpu", "--steps", "5", "--lr", "1e30",
                 "--json", "--no-scan-cache")
    assert result.exit_code == 1
    (row,) = [strict_json(line) for line in result.stdout.strip().splitlines()]
    assert row["diverged"] is True and row["activation"] is None


def test_every_command_has_json_and_help_for_every_option():
    for name, command in main.commands.items():
        options = [p for p in command.params if isinstance(p, __import__("click").Option)]
        assert any("--json" in p.opts for p in options), f"{name} has no --json"
        assert all(p.help for p in options), (name, [p.opts for p in options if not p.help])


def test_top_level_help_shows_whole_summaries():
    out = " ".join(cli("--help").stdout.split())
    for command in main.commands.values():
        first = " ".join(command.help.split("\n\n")[0].split())
        sentence = re.split(r"(?<=[.!?])\s+(?=[A-Z])", first, maxsplit=1)[0]
        assert sentence in out
    assert "(--word crowd) on demand." in out


def test_report_and_info_json_are_strict(tiny_artifact, tmp_path):
    out = strict_json(cli("report", tiny_artifact, "--out", tmp_path / "r", "--json").stdout)
    assert "report.json" in out["files"] and (tmp_path / "r" / "report.json").is_file()
    assert strict_json(cli("info", tiny_artifact, "--json").stdout)["model"]["num_layers"] == LAYERS


# --- textualize: cached scan, warnings, --keep best -------------------------------------------------------------------

def test_the_vocabulary_scan_is_cached_verified_and_rescanned_when_damaged(tiny, tmp_path, caplog):
    from ft_artifacts.scan import scan_vocabulary
    from ft_artifacts.scan_cache import _digest, cached_scan, scan_key

    fresh = scan_vocabulary(tiny)
    first = cached_scan(tiny, cache_dir=tmp_path)
    folder = tmp_path / _digest(scan_key(tiny))
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["key"]["revision"] == tiny.revision and set(meta["arrays"]) == {"acts", "a_max", "argmax", "analysis"}
    stamp = (folder / "acts.npy").stat().st_mtime_ns
    again = cached_scan(tiny, cache_dir=tmp_path)
    assert (folder / "acts.npy").stat().st_mtime_ns == stamp  # read, not recomputed
    for scan in (first, again):
        np.testing.assert_array_equal(np.asarray(scan.acts), fresh.acts)
        np.testing.assert_array_equal(scan.argmax, fresh.argmax)
        np.testing.assert_array_equal(scan.analysis, fresh.analysis)
    data = bytearray((folder / "a_max.npy").read_bytes())
    data[-1] ^= 0xFF
    (folder / "a_max.npy").write_bytes(bytes(data))
    with caplog.at_level("WARNING"):
        repaired = cached_scan(tiny, cache_dir=tmp_path)
    assert "a_max.npy does not match its sha256" in caplog.text
    np.testing.assert_array_equal(repaired.a_max, fresh.a_max)
    assert cached_scan(tiny, cache_dir=tmp_path) is not None and (folder / "a_max.npy").read_bytes() != bytes(data)
    meta = json.loads((folder / "meta.json").read_text())
    meta["key"]["revision"] = "sha256:other"
    (folder / "meta.json").write_text(json.dumps(meta))
    caplog.clear()
    with caplog.at_level("WARNING"):
        cached_scan(tiny, cache_dir=tmp_path)
    assert "made for another model" in caplog.text


def test_textualize_uses_the_cache_in_hf_home(tiny_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    args = ["textualize", "L1.N3", "--model", tiny_folder, "--device", "cpu", "--steps", "3", "--json"]
    first, second = cli(*args), cli(*args)
    assert first.exit_code == 0 and second.exit_code == 0
    assert list((tmp_path / "hf" / "ft-artifacts" / "scans").glob("*/meta.json"))
    assert strict_json(first.stdout) == strict_json(second.stdout)


def test_textualize_direction_reuses_the_same_cached_scan(tiny_folder, tmp_path, monkeypatch):
    """`textualize --direction` reads the scan cache as neuron and group requests do: the scan a neuron request
    stored is the one it uses (no second scan)."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    fast = ["--model", tiny_folder, "--device", "cpu", "--steps", "3", "--json"]
    assert cli("textualize", "L1.N3", *fast).exit_code == 0
    scans = sorted((tmp_path / "hf" / "ft-artifacts" / "scans").glob("*/meta.json"))
    assert len(scans) == 1
    stamp = scans[0].stat().st_mtime_ns
    width = json.loads((Path(tiny_folder) / "config.json").read_text())["hidden_size"]  # a layer's neurons
    np.save(tmp_path / "probe.npy", np.random.default_rng(0).standard_normal((2, width)).astype(np.float32))
    result = cli("textualize", "--direction", str(tmp_path / "probe.npy"), "--layer", "1", "-v", *fast)
    assert result.exit_code == 0, result.output
    assert "reusing the vocabulary scan cached in" in result.stderr
    assert sorted((tmp_path / "hf" / "ft-artifacts" / "scans").glob("*/meta.json")) == scans
    assert scans[0].stat().st_mtime_ns == stamp  # read, not written again


def test_row_warnings(tiny):
    from ft_artifacts.optimize import OptimConfig
    from ft_artifacts.scan import scan_vocabulary
    from ft_artifacts.commands import row_warnings
    from ft_artifacts.textualize import group_objective, neuron_objectives, textualize

    scan = scan_vocabulary(tiny)
    objectives = neuron_objectives(tiny, ["L1.N3"]) + [group_objective(tiny, scan, "crowd", "relative", 5)]
    rows = textualize(tiny, scan, objectives, OptimConfig(steps=4, lr=1.0, trace_every=1),
                      groups=[None, ("crowd", "relative", 5)])
    neuron, group = rows
    high = max(neuron.most_activating_activation, max(neuron.activation_trace)) + 1.0
    collapsed = dataclasses.replace(neuron, activation=0.4 * high, activation_trace=[high] * 4,
                                    most_activating_activation=0.0)
    (line,) = row_warnings(collapsed)
    assert "below half of its traced peak" in line and "--keep best" in line
    weak = dataclasses.replace(neuron, activation=neuron.most_activating_activation - 0.5,
                               activation_trace=[neuron.most_activating_activation - 0.5])
    assert any("less than its most activating word" in w for w in row_warnings(weak))
    below_target = dataclasses.replace(group, activation=group.target_activation - 0.5,
                                       activation_trace=[group.target_activation - 0.5])
    assert any("less than the word 'crowd' itself" in w for w in row_warnings(below_target))
    strong = dataclasses.replace(group, activation=abs(group.target_activation) + abs(group.most_activating_activation)
                                 + 1.0, activation_trace=[0.0])
    assert row_warnings(strong) == []


def test_keep_best_returns_the_best_traced_steps_input(tiny):
    from ft_artifacts.optimize import OptimConfig
    from ft_artifacts.scan import scan_vocabulary
    from ft_artifacts.commands import keep_best
    from ft_artifacts.textualize import neuron_objectives, textualize

    scan = scan_vocabulary(tiny)
    names = [f"L{layer}.N{i}" for layer in (1, 2, 3) for i in range(0, 16, 3)]
    objectives = neuron_objectives(tiny, names)

    def run(config, callback=None):
        return textualize(tiny, scan, objectives, config, callback=callback)

    config = OptimConfig(steps=30, lr=300.0, trace_every=3)  # a large lr: ascents that overshoot
    final = run(config)
    best = keep_best(final, run, config)
    replaced = [j for j, (a, b) in enumerate(zip(final, best)) if a is not b]
    assert replaced, "no row peaked before its last step; the check needs one"
    for j in replaced:
        peak = int(np.argmax(final[j].activation_trace))
        assert best[j].steps == peak * config.trace_every < config.steps
        assert best[j].activation == pytest.approx(final[j].activation_trace[peak], rel=1e-4, abs=1e-5)
        assert best[j].activation > final[j].activation
        alone = run(dataclasses.replace(config, steps=best[j].steps))[j]  # the row is what that step count gives
        assert alone.vector == best[j].vector
    for j in set(range(len(final))) - set(replaced):
        assert max(final[j].activation_trace, default=-np.inf) <= final[j].activation


# --- the card, the version, reading without torch ---------------------------------------------------------------------

def test_card_metadata_and_citation(tiny_artifact, tiny_loaded):
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(tiny_artifact / "README.md")
    data = card.data
    assert data.task_categories == ["feature-extraction"] and data.language == ["en"]
    from ft_artifacts.card import size_category

    optimized = tiny_loaded.manifest.configs["neurons"].rows + tiny_loaded.manifest.configs["word_groups"].rows
    assert data.size_categories == [size_category(optimized)]
    paper = (Path(__file__).resolve().parents[1].parent / "shared/paper/feature-textualization-paper.md")
    assert "Investigating the Encoding of Words in {BERT}'s Neurons using Feature Textualization" in card.text
    for author in ("Baeumel, Tanja", "Vijayakumar, Soniya", "van Genabith, Josef", "Neumann, Guenter",
                   "Ostermann, Simon"):
        assert author in card.text
    if paper.is_file():  # the authors as the paper's own title page gives them
        head = paper.read_text(encoding="utf-8")[:600]
        for first_last in ("Tanja Baeumel", "Soniya Vijayakumar", "Josef van Genabith", "Guenter Neumann",
                           "Simon Ostermann"):
            assert first_last in head


def test_version_is_the_distributions():
    from importlib import metadata

    assert ft_artifacts.__version__ == metadata.version("ft-artifacts")


def test_reading_needs_no_torch(tiny_artifact, tmp_path):
    code = ("import sys\n"
            "sys.modules['torch'] = None; sys.modules['transformers'] = None  # importing either now fails\n"
            "from ft_artifacts.cli import main\n"
            "main(['query', sys.argv[1], '--word', 'house', '--json'])\n")
    proc = run_python(code, tiny_artifact, cwd=tmp_path, env=subprocess_env(HF_HOME=str(tmp_path / "hf")))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert strict_json(proc.stdout)[0]["token"] == "house"


def test_a_long_run_states_its_time_first_and_keep_best_runs_from_the_cli(tiny_folder, monkeypatch):
    from ft_artifacts import cli as cli_module

    monkeypatch.setattr(cli_module._Estimate, "AFTER_S", 0.0)  # state it at the first step ...
    monkeypatch.setattr(cli_module._Estimate, "LONG_S", 0.0)  # ... however short the run
    result = cli("textualize", "L1.N3", "--model", tiny_folder, "--device", "cpu", "--steps", "20", "--lr", "1",
                 "--keep", "best", "--json")
    assert result.exit_code == 0, result.output
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("textualize: ")]
    assert re.match(r"textualize: 20 steps will take about \d+ s here \(\d+ s left\); --steps 300 would take", line)
    row = strict_json(result.stdout)
    assert 0 <= row["steps"] <= 20  # --keep best: the row says which step it holds
    monkeypatch.setattr(cli_module._Estimate, "LONG_S", 1e9)
    quiet = cli("textualize", "L1.N3", "--model", tiny_folder, "--device", "cpu", "--steps", "5", "--json")
    assert "will take about" not in quiet.stderr
