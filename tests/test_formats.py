"""Old artifacts stay readable: the committed tiny artifact written in format 2 (tests/fixtures/format2, by
tests/fixtures/make_format2.py at the commit it names) loads, verifies, answers queries and regenerates its
evaluation; a format this package cannot read is one line naming the ft-artifacts that can; a migration
registered for an older format is applied on reading."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import ft_artifacts
from ft_artifacts import manifest as manifest_module
from ft_artifacts.cli import main
from ft_artifacts.errors import ArtifactError
from ft_artifacts.manifest import BUILD_INFO, FORMAT_VERSION, read_manifest

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "format2"


def stored() -> dict:
    return json.loads((FIXTURE / BUILD_INFO).read_text(encoding="utf-8"))


def test_the_fixture_is_a_small_format_2_artifact():
    assert stored()["format_version"] == 2
    assert sum(p.stat().st_size for p in FIXTURE.rglob("*") if p.is_file()) < 500_000


def test_a_format_2_artifact_loads_verifies_and_answers_queries():
    assert FORMAT_VERSION >= 2
    art = ft_artifacts.load(FIXTURE)  # checksums verified
    assert set(art.verify(full=True).values()) == {"ok"}
    info = stored()
    assert {name: len(getattr(art, name)) for name in ("neurons", "word_groups", "vocabulary")} == {
        name: info["configs"][name]["rows"] for name in ("neurons", "word_groups", "vocabulary")}
    row = art.neurons[0]
    hits = art.nearest_words(neuron=row["neuron"], k=3)
    assert [h["token"] for h in hits] == [n["token"] for n in row["nearest"]]  # stored at build, found now


def test_a_format_2_artifact_regenerates_its_evaluation(tmp_path):
    """Its results were stored in the older layout (single_neurons, word_groups); the evaluation recomputed
    from its rows gives the same numbers under the evaluation's keys."""
    from ft_artifacts.report import write_report

    old = stored()["results"]
    assert read_manifest(FIXTURE).evaluation is None  # the older results layout: nothing typed to render
    ev = write_report(FIXTURE, tmp_path / "report")["evaluation"]
    single = old["single_neurons"]
    for new, key in (("activation_mean", "activation"), ("activation_sd", "activation_std"),
                     ("most_activating_mean", "most_activating_activation"), ("closest_cosine_mean", "closest_cosine"),
                     ("norm_vocabulary_mean", "word_norm")):
        assert getattr(ev.table1, new) == pytest.approx(single[key], rel=1e-6), new
    assert ev.table1.closest_is_most_activating_share == pytest.approx(1 - single["closest_differs"])
    for g in old["word_groups"]:
        got = ev.group(g["selection"], g["k"])
        assert (got.words, got.top1_share, got.top20_share) == (g["words"], g["top1"], g["top20"])
        assert got.cosine_target_mean == pytest.approx(g["target_cosine"], rel=1e-6)
    result = CliRunner().invoke(main, ["info", str(FIXTURE)])
    assert result.exit_code == 0, result.output
    assert "older layout" in result.stdout and "ft-artifacts report" in result.stdout


def _copy(tmp_path: Path, change) -> Path:
    folder = shutil.copytree(FIXTURE, tmp_path / "art")
    info = stored()
    change(info)
    (folder / BUILD_INFO).write_text(json.dumps(info), encoding="utf-8")
    return folder


@pytest.mark.parametrize("version", [FORMAT_VERSION + 1, 1, 0])
def test_an_unreadable_format_is_one_line_naming_the_writer(tmp_path, version):
    folder = _copy(tmp_path, lambda info: info.update(format_version=version,
                                                      versions=dict(info["versions"], **{"ft-artifacts": "9.8.7"})))
    with pytest.raises(ArtifactError) as err:
        read_manifest(folder)
    message = str(err.value)
    assert "\n" not in message and f"format {version}, written by ft-artifacts 9.8.7" in message
    assert ("pip install 'ft-artifacts>=9.8.7'" in message) == (version > FORMAT_VERSION), message
    result = CliRunner().invoke(main, ["info", str(folder)])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1 and "ft-artifacts 9.8.7" in result.stderr


def test_a_registered_migration_reads_an_older_format(tmp_path, monkeypatch):
    """An older format with a migration reads as today's, through every step in turn: here a made-up format 1
    whose build_info.json spelled `words` as `target_words`, upgraded to format 2, then by the real MIGRATIONS[2]."""
    def upgrade(data: dict) -> dict:
        data["words"] = data.pop("target_words")
        return dict(data, format_version=2)

    folder = _copy(tmp_path, lambda info: info.update(format_version=1, target_words=info.pop("words")))
    with pytest.raises(ArtifactError, match="format 1"):
        read_manifest(folder)  # no migration: refused, in one line
    monkeypatch.setitem(manifest_module.MIGRATIONS, 1, upgrade)
    manifest = read_manifest(folder)
    assert manifest.format_version == FORMAT_VERSION and manifest.words == stored()["words"]
    art = ft_artifacts.load(folder)
    assert np.isfinite(art.neurons[0]["activation"])


def _brute_near(art, query: np.ndarray, k: int) -> list[tuple[str, str]]:
    """The k optimized rows nearest to `query` by cosine, computed without FAISS (ties: neurons first)."""
    scored = []
    for order, config in enumerate(("neurons", "word_groups")):
        table = getattr(art, config)
        vectors = np.asarray(table["vector"], dtype=np.float64)
        cos = vectors @ query / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(query))
        names = table["neuron" if config == "neurons" else "group"]
        scored += [(-c, order, i, config, names[i]) for i, c in enumerate(cos) if not table[i]["diverged"]]
    return [(name, config) for _, _, _, config, name in sorted(scored)[:k]]


@pytest.mark.parametrize("index_present", [True, False])
def test_a_format_2_artifacts_one_optimized_index_answers_neurons_near(tmp_path, index_present):
    """Format 2 kept the neurons' and the groups' rows in one index/optimized.faiss; format 3 reads it as it is
    (or rebuilds it when missing) and maps its rows to the two configs."""
    folder = shutil.copytree(FIXTURE, tmp_path / "art")
    if not index_present:
        (folder / "index/optimized.faiss").unlink()
    art = ft_artifacts.load(folder)
    assert art.manifest.index_of("word_groups") == ("optimized", art.manifest.configs["neurons"].rows)
    query = np.asarray(art.vocabulary[5]["vector"], dtype=np.float64)
    k = len(art.neurons) + 3  # reaches into the word_groups rows
    hits = art.neurons_near(vectors=query[None].astype(np.float32), k=k)[0]
    assert [(h["name"], h["config"]) for h in hits] == _brute_near(art, query, k)


def test_the_format_2_index_layout_is_refused_in_a_format_3_manifest(tmp_path):
    """Only an artifact written as format 2 may hold the one combined index; a format-3 build_info.json that
    lists it is refused in one line, as any other layout it does not describe."""
    folder = _copy(tmp_path, lambda info: info.update(format_version=3))
    with pytest.raises(ArtifactError) as err:
        read_manifest(folder)
    assert "'indexes' must name exactly vocab, neurons, word_groups" in str(err.value)
    assert "\n" not in str(err.value)
