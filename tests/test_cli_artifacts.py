"""The artifact commands of the `ft-artifacts` CLI (query, info, push --dry-run, build) on the real tiny artifact.

Most commands run in-process through click's CliRunner; the dry run goes through the installed console script
in a child process pointed at a loopback Hub, to prove it sends nothing."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

pytest.register_assert_rewrite("artifact_fixtures")  # before the import below: its helpers assert too

from artifact_fixtures import LAYERS, HIDDEN, subprocess_env  # noqa: E402
from hubserver import run_hub_server  # noqa: E402

import ft_artifacts  # noqa: E402
from ft_artifacts.cli import main  # noqa: E402
from ft_artifacts.schema import CONFIGS  # noqa: E402

pytest_plugins = ["artifact_fixtures"]

CONSOLE_SCRIPT = Path(sys.executable).with_name("ft-artifacts")


def cli(*args) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def ok(*args) -> str:
    result = cli(*args)
    assert result.exit_code == 0 and result.exception is None, (result.output, result.exception)
    return result.stdout


def fails_cleanly(*args) -> str:
    """The command fails with exit status 1 (2 for a usage error) and exactly one `Error: ...` line on stderr;
    returns that line."""
    result = cli(*args)
    # A clean failure is click's own SystemExit; any other exception would have been a traceback.
    assert isinstance(result.exception, SystemExit), (result.exception, result.output)
    assert result.exit_code in (1, 2) and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def sampled_neuron(art) -> str:
    return art.neurons[5]["neuron"]


def test_query_json_equals_the_loader(tiny_artifact, tiny_loaded) -> None:
    neuron = sampled_neuron(tiny_loaded)
    cases = [
        (["--neuron", neuron], {"neuron": neuron}, 10),
        (["--neuron", neuron, "-n", "3"], {"neuron": neuron}, 3),
        (["--group", "people", "--selection", "relative", "--group-size", "10"], {"group": "people/relative/10"}, 10),
        (["--group", "time", "--selection", "absolute", "--group-size", "450", "--top", "4"],
         {"group": "time/absolute/450"}, 4),
        (["--group", "people"], {"group": "people/relative/250"}, 10),  # documented defaults
        (["--word", "people"], {"word": "people"}, 10),
        (["--word", "/"], {"word": "/"}, 10),
    ]
    for args, query, k in cases:
        got = json.loads(ok("query", tiny_artifact, *args, "--json"))
        want = [{"token": h["token"], "cosine": h["cosine"]} for h in tiny_loaded.nearest_words(k=k, **query)]
        assert got == want, args


def test_query_human_output(tiny_artifact, tiny_loaded) -> None:
    neuron = sampled_neuron(tiny_loaded)
    lines = ok("query", tiny_artifact, "--neuron", neuron, "-n", "4").splitlines()
    assert lines[0] == f"nearest tokens to {neuron}:"
    hits = tiny_loaded.nearest_words(neuron=neuron, k=4)
    assert [line.split() for line in lines[1:]] == [[h["token"], f"{h['cosine']:.4f}"] for h in hits]


def test_info_shows_configs_and_checksums(tiny_artifact, tiny_loaded) -> None:
    out = ok("info", tiny_artifact)
    info = json.loads((tiny_artifact / "build_info.json").read_text())
    assert f"model: {info['model']['id']} ({info['model']['revision']}), {LAYERS} layers x {HIDDEN}" in out
    for name in CONFIGS:
        assert re.search(rf"^\s+{name}\s+{info['configs'][name]['rows']} rows$", out, re.M), name
    n = len(info["files"])
    assert out.rstrip().splitlines()[-1] == f"checksums: {n}/{n} ok"
    as_json = json.loads(ok("info", tiny_artifact, "--json"))
    assert as_json["checksums"] == {rel: "ok" for rel in info["files"]}
    assert {k: v for k, v in as_json.items() if k != "checksums"} == info


def test_info_reports_a_missing_index(tiny_artifact, tmp_path) -> None:
    copy = Path(shutil.copytree(tiny_artifact, tmp_path / "copy"))
    (copy / "index/vocab.faiss").unlink()
    n = len(json.loads((copy / "build_info.json").read_text())["files"])
    out = ok("info", copy)
    assert f"checksums: {n - 1}/{n} ok\n  index/vocab.faiss: missing (rebuilt on use)" in out


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_errors_are_one_clean_line(tiny_artifact, tiny_loaded, tmp_path) -> None:
    unsampled = next(r["neuron"] for r in tiny_loaded.neuron_stats if not r["sampled"])
    assert unsampled in fails_cleanly("query", tiny_artifact, "--neuron", unsampled)
    assert "out of range" in fails_cleanly("query", tiny_artifact, "--neuron", f"L{LAYERS + 1}.N0")
    assert "'zebra'" in fails_cleanly("query", tiny_artifact, "--word", "zebra")
    assert "group is not in this artifact" in fails_cleanly("query", tiny_artifact, "--group", "people",
                                                            "--group-size", "11")
    # Each option takes only its own kind: a word is no neuron, a neuron name no word.
    assert "--neuron takes a neuron name" in fails_cleanly("query", tiny_artifact, "--neuron", "people")
    assert "not a single token" in fails_cleanly("query", tiny_artifact, "--word", unsampled)
    assert "not a single token" in fails_cleanly("query", tiny_artifact, "--word", "people/relative/10")
    assert "exactly one of" in fails_cleanly("query", tiny_artifact, "--neuron", unsampled, "--word", "people")
    assert "exactly one of" in fails_cleanly("query", tiny_artifact)
    assert "0 is not in the range x>=1" in fails_cleanly("query", tiny_artifact, "--word", "people", "-n", "0")
    assert "No such option" in fails_cleanly("query", tiny_artifact, "--word", "people", "-k", "3")
    for command in ("query", "info"):
        assert "no such artifact folder" in fails_cleanly(command, tmp_path / "nope", *(
            ["--word", "people"] if command == "query" else []))
        assert "not an ft-artifacts artifact" in fails_cleanly(command, tmp_path, *(
            ["--word", "people"] if command == "query" else []))

    missing = Path(shutil.copytree(tiny_artifact, tmp_path / "missing"))
    (missing / "data/word_groups/train-00000-of-00001.parquet").unlink()
    corrupt = Path(shutil.copytree(tiny_artifact, tmp_path / "corrupt"))
    flip_byte(corrupt / "data/vocabulary/train-00000-of-00001.parquet")
    broken = Path(shutil.copytree(tiny_artifact, tmp_path / "broken"))
    (broken / "build_info.json").write_text('{"files": ')
    for command, extra in (("query", ["--word", "people"]), ("info", [])):
        assert "data/word_groups/train-00000-of-00001.parquet is missing" in fails_cleanly(command, missing, *extra)
        line = fails_cleanly(command, corrupt, *extra)
        assert "data/vocabulary/train-00000-of-00001.parquet does not match the sha256" in line
        assert "build_info.json is corrupt" in fails_cleanly(command, broken, *extra)

    assert "push needs --repo-id" in fails_cleanly("push", tiny_artifact)
    assert "artifact folder not found" in fails_cleanly("push", tmp_path / "nope", "--repo-id", "a/b", "--dry-run")
    assert "build_info.json is missing" in fails_cleanly("push", tmp_path, "--repo-id", "a/b", "--dry-run")
    out = tmp_path / "never-built"
    assert "--push needs --repo-id" in fails_cleanly("build", "--out", out, "--push", "--device", "cpu")
    assert not out.exists()


def test_push_dry_run_lists_every_file_and_touches_nothing(tiny_artifact, tmp_path) -> None:
    def snapshot() -> dict:
        return {p.relative_to(tiny_artifact).as_posix(): (p.stat().st_mtime_ns, p.stat().st_size)
                for p in tiny_artifact.rglob("*")}

    before = snapshot()
    info = json.loads((tiny_artifact / "build_info.json").read_text())
    with run_hub_server() as hub:
        env = subprocess_env(HF_ENDPOINT=hub.endpoint, HF_TOKEN="hf_dummyDryRunToken0123456789",
                             HF_HOME=str(tmp_path / "hf"))
        del env["HF_HUB_OFFLINE"]  # it may go online: it must choose not to
        proc = subprocess.run([str(CONSOLE_SCRIPT), "push", str(tiny_artifact), "--repo-id", "a/b", "--dry-run"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert hub.requests == [] and hub.repos == {}
    lines = proc.stdout.splitlines()
    listed = {}
    for line in lines[1:]:
        match = re.fullmatch(r"  (\S+)  (\d+) bytes  sha256 ([0-9a-f]{64})", line)
        assert match, line
        listed[match[1]] = {"size": int(match[2]), "sha256": match[3]}
    assert lines[0] == f"dry run: would upload {len(info['files']) + 1} files to a/b@main"
    build_info = (tiny_artifact / "build_info.json").read_bytes()
    assert listed == {**info["files"], "build_info.json": {"size": len(build_info),
                                                           "sha256": hashlib.sha256(build_info).hexdigest()}}
    assert snapshot() == before
    assert "hf_dummy" not in proc.stdout + proc.stderr


def test_cli_build_demo_preset_end_to_end(tiny_bert, tmp_path) -> None:
    out = tmp_path / "demo"
    result = cli("build", "--preset", "demo", "--model", tiny_bert, "--steps", "5", "--out", out, "--device", "cpu")
    assert result.exit_code == 0, (result.output, result.exception)
    assert result.stdout.splitlines()[-1] == f"built {out}"
    art = ft_artifacts.load(out)  # checksums verified
    build = art.manifest.settings
    assert build.model == str(tiny_bert) and build.optim.steps == 5
    assert build.ks == (10, 100, 250, 450) and build.selections == ("absolute", "relative")
    assert len(art.word_groups) == (build.random_words + build.curated_words) * 2 * 4
    assert set(art.neurons["steps"]) == {5}
    assert not (out / ".partial").exists()
    hits = json.loads(ok("query", out, "--group", "people", "--selection", "relative", "--group-size", "450", "--json"))
    assert hits == [{"token": h["token"], "cosine": h["cosine"]} for h in art.nearest_words(group="people/relative/450")]
    assert 'load_dataset("ORG/NAME"' in (out / "README.md").read_text()  # no repo named: a placeholder


def test_cli_build_push_dry_run_names_the_repo_in_the_card(tiny_bert, tmp_path) -> None:
    out = tmp_path / "pushed"
    result = cli("build", "--preset", "demo", "--model", tiny_bert, "--steps", "2", "--out", out, "--device", "cpu",
                 "--push", "--repo-id", "org/ft-demo", "--dry-run")
    assert result.exit_code == 0, (result.output, result.exception)
    assert "dry run: would upload" in result.stdout and "org/ft-demo@main" in result.stdout
    card = (out / "README.md").read_text()
    assert 'load_dataset("org/ft-demo", "neurons"' in card and 'ft_artifacts.load("org/ft-demo")' in card


def test_a_hostile_index_with_a_matching_checksum_is_one_clean_line(tiny_artifact, tmp_path) -> None:
    """A stranger's artifact whose manifest vouches for an index of the wrong kind: refused before FAISS reads it."""
    import faiss
    import numpy as np

    from ft_artifacts.files import sha256_file
    from ft_artifacts.manifest import FileEntry, read_manifest, write_manifest

    copy = Path(shutil.copytree(tiny_artifact, tmp_path / "hostile"))
    manifest = read_manifest(copy)
    entry = manifest.indexes["vocab"]
    l2 = faiss.IndexFlatL2(entry.dimension)
    l2.add(np.random.default_rng(0).standard_normal((entry.rows, entry.dimension)).astype(np.float32))
    faiss.write_index(l2, str(copy / entry.path))
    manifest.files[entry.path] = FileEntry(sha256_file(copy / entry.path), (copy / entry.path).stat().st_size)
    write_manifest(copy, manifest)
    line = fails_cleanly("query", copy, "--word", "people")
    assert "index/vocab.faiss" in line and "IndexFlatL2" in line
