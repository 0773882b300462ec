"""The optional `directions` config: `build --directions FILE --directions-layer L` on the tiny BERT,
loaded, queried, listed and reported; resumed after a chunk; a changed file refused on resume; bad files
refused in one line before the model loads where the model is not needed; an artifact without directions
as before; and a direction row of the artifact equal to `textualize --direction` on the same settings."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

pytest.register_assert_rewrite("artifact_fixtures")

from artifact_fixtures import HIDDEN, assert_same_artifact, tiny_build_config  # noqa: E402

from ft_artifacts.cli import main  # noqa: E402

pytest_plugins = ["artifact_fixtures"]

DEMO = ["build", "--preset", "demo", "--steps", "6", "--device", "cpu"]  # as tests/test_distributed.py builds
OPTIMIZED = ("vector", "pre_ln_vector", "norm", "activation", "diverged", "most_activating_token",
             "most_activating_token_id", "most_activating_activation", "nearest", "activation_trace", "seed", "steps",
             "lr", "init_std", "method")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    from safetensors.numpy import save_file

    root = tmp_path_factory.mktemp("directions")
    rng = np.random.default_rng(7)
    np.save(root / "probe.npy", rng.standard_normal((3, HIDDEN)).astype(np.float32))
    save_file({"encoder": rng.standard_normal((2, HIDDEN)).astype(np.float32)}, str(root / "sae.safetensors"))
    return {"probe": root / "probe.npy", "sae": root / "sae.safetensors"}


def direction_args(files) -> list[str]:
    return ["--directions", str(files["probe"]), "--directions", str(files["sae"]),
            "--directions-layer", "2", "--directions-layer", "3"]


@pytest.fixture(scope="module")
def built(tiny_bert, files, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("built") / "art"
    result = CliRunner().invoke(main, [*DEMO, "--model", str(tiny_bert), "--out", str(out), *direction_args(files)])
    assert result.exit_code == 0, result.output
    return out


def test_build_load_query_info_report_round_trip(built: Path, files, tiny_lm, tmp_path: Path) -> None:
    import ft_artifacts
    from ft_artifacts.hooks import activations
    from ft_artifacts.manifest import artifact_paths

    art = ft_artifacts.load(built, full_verify=True)
    manifest = art.manifest
    assert sorted(set(manifest.files) | {"build_info.json"}) == sorted(artifact_paths(directions=True))
    assert manifest.configs["directions"].files == ("data/directions/train-00000-of-00001.parquet",)
    entry = manifest.indexes["directions"]
    assert (entry.path, entry.rows, entry.sources) == ("index/directions.faiss", 5, (("directions", 5),))
    assert [(d["layer"], d["rows"], d["sha256"]) for d in manifest.settings.directions] == \
        [(2, 3, sha256(files["probe"])), (3, 2, sha256(files["sae"]))]

    table = art.directions
    columns = table.to_dict()
    assert columns["direction"] == ["L2.probe[0]", "L2.probe[1]", "L2.probe[2]", "L3.sae[0]", "L3.sae[1]"]
    assert columns["file"] == ["probe.npy"] * 3 + ["sae.safetensors"] * 2 and columns["row"] == [0, 1, 2, 0, 1]
    assert columns["file_sha256"] == [sha256(files["probe"])] * 3 + [sha256(files["sae"])] * 2
    from safetensors.numpy import load_file

    weights = [*np.load(files["probe"]), *load_file(str(files["sae"]))["encoder"]]
    for record, d in zip(table, weights):
        assert record["weights_sha256"] == hashlib.sha256(d.astype("<f8").tobytes()).hexdigest()
        layer = record["layer"]
        with torch.no_grad():  # the row's activation is d . a_L at its optimized input, recomputed
            _, acts = activations(tiny_lm, torch.tensor(record["pre_ln_vector"]).view(1, 1, -1))
        want = float((acts[0, (layer - 1) * HIDDEN:layer * HIDDEN].double() * torch.from_numpy(d).double()).sum())
        assert record["activation"] == pytest.approx(want, rel=1e-4, abs=1e-5)
        # the loader's exact search agrees with the stored nearest tokens
        hits = art.nearest_words(direction=record["direction"], k=5)
        assert [h["token"] for h in hits] == [n["token"] for n in record["nearest"][:5]]

    # its own index: row i is directions row i, unit length
    assert art.index("directions") is art.directions_index
    index_vectors = art.directions_index.reconstruct_n(0, 5)
    vectors = np.asarray(columns["vector"], dtype=np.float32)
    assert np.allclose(index_vectors, vectors / np.linalg.norm(vectors, axis=1, keepdims=True), atol=1e-6)

    cli = CliRunner()
    query = cli.invoke(main, ["query", str(built), "--direction", "L3.sae[1]", "-n", "4", "--json"])
    assert query.exit_code == 0, query.output
    assert [h["token"] for h in json.loads(query.stdout)] == [n["token"] for n in table[4]["nearest"][:4]]
    listed = cli.invoke(main, ["info", str(built), "--directions", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [d["direction"] for d in json.loads(listed.stdout)["directions"]] == columns["direction"]
    info = cli.invoke(main, ["info", str(built)])
    assert info.exit_code == 0 and "directions" in info.stdout and "checksums:" in info.stdout

    report = cli.invoke(main, ["report", str(built), "--out", str(tmp_path / "report")])
    assert report.exit_code == 0, report.output
    summary = json.loads((tmp_path / "report/report.json").read_text())["directions"]
    diverged = np.asarray(columns["diverged"])
    assert (summary["rows"], summary["diverged"]) == (5, int(diverged.sum()))
    probe = summary["sources"][0]
    activation = np.asarray(columns["activation"][:3], dtype=np.float64)
    most = np.asarray(columns["most_activating_activation"][:3], dtype=np.float64)
    assert (probe["file"], probe["layer"], probe["rows"]) == ("probe.npy", 2, 3)
    assert probe["activation_mean"] == pytest.approx(activation.mean(), rel=1e-6)
    assert probe["most_activating_mean"] == pytest.approx(most.mean(), rel=1e-6)
    assert probe["above_most_activating"] == pytest.approx(float((activation > most).mean()))
    markdown = (tmp_path / "report/report.md").read_text()
    assert "## Directions (config `directions`)" in markdown and "| probe.npy | 2 | 3 |" in markdown
    assert "### Directions (config `directions`)" in (built / "README.md").read_text()

    from ft_artifacts.explore import explore  # the explorer ignores the config, and does not break on it

    site = explore(str(built), tmp_path / "site")
    assert (tmp_path / "site/index.html").is_file() and site["files"]


def test_unknown_and_absent_directions_are_one_line_errors(built: Path, tiny_artifact: Path) -> None:
    import ft_artifacts
    from ft_artifacts.errors import ArtifactError

    art = ft_artifacts.load(built)
    with pytest.raises(ArtifactError, match=r"not one of this artifact's 5 directions; did you mean `L2.probe\[1\]`"):
        art.nearest_words(direction="L2.prob[1]")
    result = CliRunner().invoke(main, ["query", str(built), "--direction", "L9.probe[0]"])
    assert result.exit_code != 0 and "ft-artifacts info ARTIFACT --directions" in result.output
    assert len(result.output.strip().splitlines()) == 1

    plain = ft_artifacts.load(tiny_artifact)
    assert plain.directions is None
    for call in (lambda: plain.nearest_words(direction="L2.probe[0]"), lambda: plain.subset("directions")):
        with pytest.raises(ArtifactError, match="has no directions config; build one with"):
            call()
    listed = CliRunner().invoke(main, ["info", str(tiny_artifact), "--directions"])
    assert listed.exit_code != 0 and "has no directions config" in listed.output


def test_an_artifact_without_directions_is_unchanged(tiny_artifact: Path, tiny_config) -> None:
    from ft_artifacts.manifest import CONFIGS, OPTIMIZED_CONFIGS, artifact_paths, read_manifest

    manifest = read_manifest(tiny_artifact)
    written = sorted(p.relative_to(tiny_artifact).as_posix() for p in tiny_artifact.rglob("*") if p.is_file())
    assert written == sorted(artifact_paths())
    assert not any("directions" in p for p in written)
    assert tuple(manifest.configs) == CONFIGS and set(manifest.indexes) == {"vocab", *OPTIMIZED_CONFIGS}
    assert not manifest.settings.directions and "directions" not in manifest.settings.to_dict()
    assert "directions" not in tiny_config.to_dict()
    card = (tiny_artifact / "README.md").read_text()
    assert "directions" not in card.lower()


def test_a_direction_row_equals_textualize_direction(built: Path, files, tiny_bert) -> None:
    import ft_artifacts

    result = CliRunner().invoke(main, ["textualize", "--model", str(tiny_bert), "--device", "cpu", "--direction",
                                       str(files["probe"]), "--layer", "2", "--steps", "6", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
    stored = ft_artifacts.load(built).directions
    assert [r["direction"] for r in rows] == stored.to_dict()["direction"][:3]
    for got, want in zip(stored.select(range(3)), rows):
        for column in OPTIMIZED:
            assert got[column] == (pytest.approx(want[column], rel=1e-6) if isinstance(want[column], float)
                                   else want[column]), column


def _stop_after(stage: str, at: int):
    def progress(name):
        def update(done, _total):
            if name.startswith(stage) and done >= at:
                raise KeyboardInterrupt("stopped by the test")
        return update
    return progress


def test_resume_after_a_chunk_and_a_changed_file_refused(tiny_bert, tmp_path: Path, caplog) -> None:
    from ft_artifacts.builders.build import build
    from ft_artifacts.directions import direction_sources
    from ft_artifacts.errors import ArtifactError

    path = tmp_path / "probe.npy"
    np.save(path, np.random.default_rng(3).standard_normal((20, HIDDEN)))  # 2 chunks of 16 rows
    config = tiny_build_config(tiny_bert, directions=direction_sources([path], [2]))
    steps = config.optim.steps
    want = build(config, tmp_path / "whole")  # uninterrupted
    out = tmp_path / "resumed"
    # neurons 3 chunks, word_groups 3, then directions 2: stopped within the second directions chunk
    with pytest.raises(KeyboardInterrupt):
        build(config, out, progress=_stop_after("optimizing", 7 * steps + 2))
    chunks = sorted(p.name for p in (out / ".partial/chunks").glob("*.parquet"))
    assert "directions-00000.parquet" in chunks and "directions-00001.parquet" not in chunks

    original = path.read_bytes()
    changed = np.load(path)
    changed[0, 0] += 1.0
    np.save(path, changed)
    with pytest.raises(ArtifactError, match=r"^--directions .*probe\.npy changed since this build started "
                                            r"\(sha256 [0-9a-f]{12}\.\.\., now [0-9a-f]{12}\.\.\.\); restore the file"):
        build(tiny_build_config(tiny_bert, directions=direction_sources([path], [2])), out)
    path.write_bytes(original)

    caplog.set_level(logging.INFO, logger="ft_artifacts.builders.build")
    build(config, out)
    assert "resuming: directions-00000.parquet already optimized" in caplog.text
    assert "directions-00001.parquet already optimized" not in caplog.text
    assert_same_artifact(out, want)

    np.save(path, changed)  # a finished artifact is refused the same way
    with pytest.raises(ArtifactError, match="changed since this build started"):
        build(tiny_build_config(tiny_bert, directions=direction_sources([path], [2])), want)


def _bad(folder: Path):
    np.save(folder / "object.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)  # needs unpickling
    np.save(folder / "nan.npy", np.array([[0.0] * (HIDDEN - 1) + [np.inf]]))
    np.save(folder / "cube.npy", np.zeros((2, 2, HIDDEN)))
    np.save(folder / "narrow.npy", np.zeros((2, 5)))
    np.save(folder / "good.npy", np.ones((2, HIDDEN)))


@pytest.mark.parametrize("file, layers, message", [
    ("object.npy", ["2"], "object.npy: cannot read it (Object arrays cannot be loaded when allow_pickle=False)"),
    ("nan.npy", ["2"], "nan.npy: row 0 hold non-finite values (NaN or inf)"),
    ("cube.npy", ["2"], f"cube.npy: shape (2, 2, {HIDDEN}); give one direction [h] or rows [k, h]"),
    ("missing.npy", ["2"], "missing.npy: no such file"),
    ("good.txt", ["2"], "use a .npy or .safetensors file"),
    ("good.npy", [], "--directions needs --directions-layer L"),
    ("good.npy", ["2", "3"], "give one --directions-layer for every --directions file, or one for all"),
])
def test_bad_files_are_refused_before_the_model_loads(file, layers, message, tmp_path: Path) -> None:
    _bad(tmp_path)
    (tmp_path / "good.txt").write_text("1 2 3")
    out = tmp_path / "art"
    args = [*DEMO, "--model", str(tmp_path / "no-such-model"), "--out", str(out), "--directions", str(tmp_path / file)]
    result = CliRunner().invoke(main, args + [a for layer in layers for a in ("--directions-layer", layer)])
    assert result.exit_code != 0
    assert message in result.output and "no-such-model" not in result.output  # the model was never looked at
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.parametrize("file, layer, message", [
    ("narrow.npy", "2", f"narrow.npy: rows have 5 values but layer 2 has {HIDDEN} neurons"),
    ("good.npy", "4", "--directions-layer 4 is not a layer of this model (layers 1..3)"),
])
def test_a_file_that_does_not_fit_the_model_is_refused_before_any_work(file, layer, message, tiny_bert,
                                                                        tmp_path: Path) -> None:
    _bad(tmp_path)
    out = tmp_path / "art"
    result = CliRunner().invoke(main, [*DEMO, "--model", str(tiny_bert), "--out", str(out),
                                       "--directions", str(tmp_path / file), "--directions-layer", layer])
    assert result.exit_code != 0 and message in result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.slow  # 17-24 s here; the default run keeps test_distributed.py's torchrun build of the same chunk sharing
def test_torchrun_builds_the_same_directions_artifact(built: Path, files, tiny_bert, tmp_path: Path) -> None:
    from test_distributed import cli_build, finish

    finish(cli_build(tiny_bert, tmp_path / "art", tmp_path, torchrun=True, extra=tuple(direction_args(files))))
    assert_same_artifact(tmp_path / "art", built)
    assert json.loads((tmp_path / "art/build_info.json").read_text())["runtime"]["processes"] == 2
    shutil.rmtree(tmp_path / "art")


def test_verify_checks_the_directions_files_like_every_other(built: Path, tmp_path: Path) -> None:
    import ft_artifacts
    from ft_artifacts.errors import ArtifactError, ChecksumError

    art = shutil.copytree(built, tmp_path / "art")
    want = ft_artifacts.load(art).directions_index.reconstruct_n(0, 5)
    (art / "index/directions.faiss").unlink()
    loaded = ft_artifacts.load(art)
    assert loaded.verify()["index/directions.faiss"] == "missing (rebuilt on use)"
    assert np.array_equal(loaded.directions_index.reconstruct_n(0, 5), want)  # rebuilt from the rows
    data = art / "data/directions/train-00000-of-00001.parquet"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 1
    data.write_bytes(bytes(raw))
    with pytest.raises(ChecksumError, match="data/directions/train-00000-of-00001.parquet does not match the sha256"):
        ft_artifacts.load(art, full_verify=True)
    (art / "data/directions/extra.parquet").write_bytes(b"")
    with pytest.raises(ArtifactError, match="does not list: data/directions/extra.parquet"):
        ft_artifacts.load(art)
