"""Building: a killed build resumes to a byte-identical artifact; settings are checked before any work;
a finished artifact is never recomputed or overwritten with other settings."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytest.register_assert_rewrite("artifact_fixtures")

from artifact_fixtures import assert_same_artifact, file_hashes, subprocess_env, tiny_build_config  # noqa: E402
from ft_artifacts.schema import CONFIGS  # noqa: E402

pytest_plugins = ["artifact_fixtures"]

INDEXES = ("index/vocab.faiss", "index/neurons.faiss", "index/word_groups.faiss")

# --- resuming a killed build ----------------------------------------------------------------------------------------

BUILD_SCRIPT = """
import json, logging, sys, time
from pathlib import Path
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
from ft_artifacts.builders.build import build
from ft_artifacts.builders.presets import BuildConfig

config = BuildConfig.from_dict(json.loads(sys.argv[1]))
stop_stage, stop_at = sys.argv[3], int(sys.argv[4])

def progress(stage):
    def update(done, total):
        if stage.startswith(stop_stage) and done >= stop_at:
            print("STOPPED", stage, done, total, flush=True)
            time.sleep(600)  # wait here to be killed
    return update

build(config, Path(sys.argv[2]), progress=progress)
print("FINISHED", flush=True)
"""


def build_until_killed(config, out: Path, stage: str, at: int, cwd: Path) -> str:
    """Run the build in a child process, SIGKILL it once it reports `at` in `stage`; return its log."""
    log = cwd / f"build-{stage.split()[0]}.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", BUILD_SCRIPT, json.dumps(config.to_dict()), str(out), stage,
                                 str(at)], cwd=cwd, env=subprocess_env(), stdout=subprocess.PIPE, stderr=err, text=True)
    watchdog = threading.Timer(240, proc.kill)  # never hang the suite if the child never reaches `stage`
    watchdog.start()
    try:
        line = proc.stdout.readline()  # blocks until the child stops at `stage` (or exits)
        assert line.startswith("STOPPED"), (line, proc.wait(), log.read_text()[-3000:])
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
        return log.read_text()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def chunk_stats(out: Path) -> dict[str, tuple[int, int]]:
    """Each finished chunk file's (inode, mtime): a rewritten chunk changes both (atomic rename)."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in sorted((out / ".partial/chunks").glob("*.parquet"))}


def resumed(log: str) -> set[str]:
    return {line.split("resuming: ")[1].split(" already optimized")[0] for line in log.splitlines()
            if "already optimized" in line}


def test_killed_build_resumes_to_a_byte_identical_artifact(tiny_artifact: Path, tiny_config, tmp_path: Path,
                                                             caplog) -> None:
    from ft_artifacts.builders.build import build
    from ft_artifacts.errors import ArtifactError
    from ft_artifacts.optimize import OptimConfig

    out = tmp_path / "resumed"
    steps = tiny_config.optim.steps
    # 1. Killed while optimizing the second word_groups chunk: all neurons chunks and one group chunk are done.
    # (The tiny build has 3 neurons chunks, then the word_groups chunks, in one optimizing stage.)
    build_until_killed(tiny_config, out, "optimizing", 4 * steps + steps // 3, tmp_path)
    first = chunk_stats(out)
    assert sorted(first) == ["neurons-00000.parquet", "neurons-00001.parquet", "neurons-00002.parquet",
                             "word_groups-00000.parquet"]
    assert not (out / "build_info.json").exists()

    # Different settings on top of the unfinished build are refused, and touch nothing.
    other = tiny_build_config(tiny_config.model, optim=OptimConfig(steps=steps + 1, trace_every=5))
    marker = (out / ".partial/build.json").read_bytes()
    with pytest.raises(ArtifactError, match="unfinished build with other settings"):
        build(other, out)
    assert chunk_stats(out) == first and (out / ".partial/build.json").read_bytes() == marker

    # 2. Resumed, then killed again while packing (after the first data file was written).
    log = build_until_killed(tiny_config, out, "packing", 1, tmp_path)
    assert resumed(log) == set(first)
    assert "resuming: plan found" in log
    second = chunk_stats(out)
    assert {name: second[name] for name in first} == first  # finished chunks were not rewritten
    assert len(second) == 6 and not (out / "build_info.json").exists()
    assert (out / "data/neurons").is_dir()

    # 3. Resumed to completion: skips every chunk, and equals the uninterrupted build byte for byte.
    caplog.set_level(logging.INFO, logger="ft_artifacts.builders.build")
    build(tiny_config, out, keep_work=True)
    assert resumed(caplog.text) == set(second)
    assert chunk_stats(out) == second
    # the optimization's cost is the chunks' own timings, written in two sittings
    timings = [json.loads(p.with_suffix(".json").read_text()) for p in (out / ".partial/chunks").glob("*.parquet")]
    runtime = json.loads((out / "build_info.json").read_text())["runtime"]
    assert (runtime["chunks"], runtime["chunks_timed"]) == (6, 6) and all(t["seconds"] > 0 for t in timings)
    assert runtime["optimize_seconds"] == round(sum(t["seconds"] for t in timings), 1) > 0
    assert runtime["machine"]["device"] == "cpu" and runtime["machine"]["cpus"] == os.cpu_count()
    assert sum(t["rows"] for t in timings) == sum(len(pq.read_table(p)) for p in (out / ".partial/chunks").glob("*.parquet"))
    want = file_hashes(tiny_artifact)
    assert sum(p.startswith(("data/", "index/")) for p in want) == len(CONFIGS) + len(INDEXES)
    assert_same_artifact(out, tiny_artifact)  # data, indexes, card and build_info.json


def test_a_build_without_target_words_is_refused(tiny_config, tmp_path: Path) -> None:
    from ft_artifacts.builders.build import build
    from ft_artifacts.errors import ArtifactError

    with pytest.raises(ArtifactError, match="at least one target word"):
        build(tiny_build_config(tiny_config.model, random_words=0, curated_words=0), tmp_path / "no-words")
    assert not (tmp_path / "no-words").exists(), "a refused build must leave nothing behind"


def test_settings_that_do_not_fit_the_model_are_refused_before_any_work(tiny_config, tmp_path: Path) -> None:
    from dataclasses import replace

    from ft_artifacts.builders.build import build
    from ft_artifacts.errors import ArtifactError

    with pytest.raises(ArtifactError, match=r"group sizes \[481\]"):
        build(replace(tiny_config, ks=(10, 481)), tmp_path / "bad-k")
    assert not (tmp_path / "bad-k").exists()
    # the corrected settings then build in the same folder (nothing was claimed)
    fixed = replace(tiny_config, ks=(10,), random_words=1, curated_words=1)
    assert (build(fixed, tmp_path / "bad-k") / "build_info.json").is_file()


def test_rebuilding_a_finished_artifact(tiny_artifact: Path, tiny_config, tmp_path: Path) -> None:
    """Same settings: nothing is recomputed or rewritten. Other settings: refused, artifact untouched."""
    from dataclasses import replace

    from ft_artifacts.builders.build import build
    from ft_artifacts.errors import ArtifactError

    out = tmp_path / "copy"
    shutil.copytree(tiny_artifact, out)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    build(tiny_config, out)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before
    with pytest.raises(ArtifactError, match="finished artifact with other settings"):
        build(replace(tiny_config, word_seed=tiny_config.word_seed + 1), out)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


# --- damaged work, diverged rows -------------------------------------------------------------------------------------

def test_a_corrupt_chunk_is_redone_and_stale_temp_files_are_cleared(tiny_artifact: Path, tiny_config, tmp_path: Path,
                                                                   caplog) -> None:
    from ft_artifacts.builders.build import build

    out = tmp_path / "damaged"
    build_until_killed(tiny_config, out, "optimizing", 3 * tiny_config.optim.steps + tiny_config.optim.steps // 2,
                       tmp_path)
    chunks = sorted((out / ".partial/chunks").glob("*.parquet"))
    assert len(chunks) == 3
    chunks[1].write_bytes(chunks[1].read_bytes()[:100])  # a truncated chunk, as a full disk leaves one
    stale = out / ".partial/tmp/.train-00000-of-00001.parquet.dead.tmp"
    stale.write_bytes(b"left by a killed run")
    caplog.set_level(logging.INFO, logger="ft_artifacts.builders.build")
    build(tiny_config, out)
    assert f"chunk {chunks[1].name} is unreadable" in caplog.text
    assert resumed(caplog.text) == {chunks[0].name, chunks[2].name}
    assert_same_artifact(out, tiny_artifact)  # the redone chunk computes the same bits
    assert not (out / ".partial").exists() and not list(out.rglob("*.tmp"))


def test_diverged_rows_are_marked_never_hits_and_counted(tiny_bert, tmp_path: Path) -> None:
    import ft_artifacts
    from ft_artifacts.builders.build import build
    from ft_artifacts.errors import ArtifactError
    from ft_artifacts.optimize import OptimConfig

    config = tiny_build_config(tiny_bert, optim=OptimConfig(steps=4, lr=1e30, trace_every=1))
    art = ft_artifacts.load(build(config, tmp_path / "diverged"))
    neurons, groups = art.neurons, art.word_groups
    assert all(neurons["diverged"]) and all(groups["diverged"])  # lr 1e30 overflows float32 in every row
    assert all(n == [] for n in neurons["nearest"]) and set(groups["target_rank"]) == {None}
    ev = art.manifest.evaluation
    assert ev.artifact.diverged["neurons"] == ev.artifact.rows["neurons"] == len(neurons)
    assert ev.table1.activation_mean is None
    for g in ev.groups:
        assert g.diverged == g.words and g.top1_share == g.top20_share == 0.0
    card = (art.path / "README.md").read_text()
    assert f"diverged and left out: {len(neurons)} neurons" in card and "No evaluation figures" in card
    with pytest.raises(ArtifactError, match="diverged"):
        art.nearest_words(neuron=neurons[0]["neuron"])
    assert art.neurons_near(word="people", k=5) == []  # a diverged row is never near anything


def test_killed_during_the_vocabulary_scan_resumes_to_the_same_artifact(tiny_artifact: Path, tiny_config,
                                                                      tmp_path: Path) -> None:
    from ft_artifacts.builders.build import build

    out = tmp_path / "scan-killed"
    build_until_killed(tiny_config, out, "vocabulary scan", 1, tmp_path)
    assert not (out / ".partial/plan.json").exists() and (out / ".partial/build.json").exists()
    build(tiny_config, out)
    assert_same_artifact(out, tiny_artifact)
    assert not list(out.rglob("*.tmp"))
