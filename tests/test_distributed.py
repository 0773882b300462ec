"""Builds beyond one process: `torchrun --nproc-per-node 2` on CPU (gloo) builds the same artifact as one
process, a killed rank's job resumes to it, and a second build on a busy folder refuses in one line."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.register_assert_rewrite("artifact_fixtures")

from artifact_fixtures import assert_same_artifact, subprocess_env  # noqa: E402

pytest_plugins = ["artifact_fixtures"]

BIN = Path(sys.executable).parent
ARGS = ["build", "--preset", "demo", "--steps", "6", "--device", "cpu"]


def cli_build(model: Path, out: Path, cwd: Path, *, torchrun: bool = False, extra: tuple = ()) -> subprocess.Popen:
    command = [str(BIN / "ft-artifacts"), *ARGS, "--model", str(model), "--out", str(out), *extra]
    if torchrun:
        command = [str(BIN / "torchrun"), "--nproc-per-node", "2", "--master-port", str(_free_port()),
                   "--no-python", *command]
    env = subprocess_env(OMP_NUM_THREADS="1")
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def finish(proc: subprocess.Popen, timeout: int = 300) -> tuple[str, str]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-4000:]
    return out, err


@pytest.fixture(scope="module")
def single(tiny_bert, tmp_path_factory) -> Path:
    """The demo preset on the tiny BERT, built by one process."""
    root = tmp_path_factory.mktemp("single")
    finish(cli_build(tiny_bert, root / "art", root))
    return root / "art"


def test_torchrun_builds_the_same_artifact(single: Path, tiny_bert, tmp_path: Path) -> None:
    out, _ = finish(cli_build(tiny_bert, tmp_path / "art", tmp_path, torchrun=True))
    assert out.splitlines() == [f"built {tmp_path / 'art'}"]  # rank 0 alone reports
    assert_same_artifact(tmp_path / "art", single)
    runtime = json.loads((tmp_path / "art/build_info.json").read_text())["runtime"]
    assert runtime["processes"] == 2 and len(runtime["peak_memory_bytes"]) == 2
    assert all(p["rss"] > 10 << 20 for p in runtime["peak_memory_bytes"])
    assert runtime["chunks_timed"] == runtime["chunks"] > 1 and runtime["optimize_seconds"] > 0  # both ranks' chunks


@pytest.mark.slow  # 45 s; the single-process kill/resume tests (test_build.py) stay in the default run
def test_a_killed_rank_resumes_to_the_same_artifact(single: Path, tiny_bert, tmp_path: Path) -> None:
    out = tmp_path / "art"
    proc = cli_build(tiny_bert, out, tmp_path, torchrun=True, extra=("--steps", "400"))
    chunks = out / ".partial/chunks"
    deadline = time.monotonic() + 240
    while len(list(chunks.glob("*.parquet"))) < 2:  # both ranks have finished a chunk
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-3000:]
        time.sleep(0.2)
    workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert len(workers) == 2
    os.kill(int(workers[-1]), signal.SIGKILL)  # one rank dies; torchrun stops the other
    proc.communicate(timeout=120)
    assert proc.returncode != 0 and not (out / "build_info.json").exists()
    kept = {p.name: p.stat().st_mtime_ns for p in chunks.glob("*.parquet")}
    assert len(kept) >= 2

    # The same command again (with the killed run's steps) keeps the finished chunks and completes.
    finish(cli_build(tiny_bert, out, tmp_path, torchrun=True, extra=("--steps", "400")))
    reference = tmp_path / "reference"
    finish(cli_build(tiny_bert, reference, tmp_path, extra=("--steps", "400")))
    assert_same_artifact(out, reference)


def test_a_second_build_on_a_busy_folder_refuses_in_one_line(tiny_bert, tmp_path: Path) -> None:
    out = tmp_path / "busy"
    (out / ".partial").mkdir(parents=True)
    with open(out / ".partial/lock", "a+") as held:  # what a running build holds
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        proc = cli_build(tiny_bert, out, tmp_path)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert err.strip().splitlines() == [f"Error: another build is writing to {out}; wait for it to finish, or pass "
                                        "another --out"]
    assert sorted(p.name for p in (out / ".partial").iterdir()) == ["lock"]  # nothing else written


@pytest.mark.slow  # 23 s
def test_neurons_all_builds_an_atlas(tiny_bert, tmp_path: Path) -> None:
    import ft_artifacts
    from artifact_fixtures import HIDDEN, LAYERS

    finish(cli_build(tiny_bert, tmp_path / "atlas", tmp_path, extra=("--neurons", "all", "--steps", "2")))
    art = ft_artifacts.load(tmp_path / "atlas")
    assert len(art.neurons) == LAYERS * HIDDEN and all(art.neuron_stats["sampled"])
    finish(cli_build(tiny_bert, tmp_path / "five", tmp_path, extra=("--neurons", "5", "--steps", "2",
                                                                     "--chunk-rows", "7")))
    five = ft_artifacts.load(tmp_path / "five")
    assert len(five.neurons) == 5 * LAYERS and five.manifest.settings.chunk_rows == 7
    bad = cli_build(tiny_bert, tmp_path / "bad", tmp_path, extra=("--neurons", "lots"))
    _, err = bad.communicate(timeout=120)
    assert bad.returncode == 1 and "--neurons 'lots'" in err and not (tmp_path / "bad").exists()
    shutil.rmtree(tmp_path / "atlas")
