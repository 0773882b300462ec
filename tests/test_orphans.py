"""torchrun workers whose agent died stop within a minute and free the folder's lock, so the same
command can start again at once (real torchrun, real SIGKILL)."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from artifact_fixtures import subprocess_env
from test_distributed import ARGS, BIN, _free_port

pytest_plugins = ["artifact_fixtures"]


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")  # exited, not yet reaped
    except FileNotFoundError:
        return True


@pytest.mark.slow
def test_workers_of_a_killed_torchrun_agent_exit_and_free_the_lock(tiny_bert, tmp_path: Path) -> None:
    out = tmp_path / "art"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
               str(_free_port()), "--no-python", str(BIN / "ft-artifacts"), *ARGS, "--model", str(tiny_bert),
               "--out", str(out), "--steps", "1200"]
    proc = subprocess.Popen(command, cwd=tmp_path, env=subprocess_env(OMP_NUM_THREADS="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 240
    while not list((out / ".partial/chunks").glob("*.parquet")):  # the workers are optimizing
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-3000:]
        time.sleep(0.2)
    workers = [int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                              text=True).stdout.split()]
    assert len(workers) == 2
    os.kill(proc.pid, signal.SIGKILL)  # the agent dies, and cannot tell its workers
    killed = time.monotonic()
    proc.wait(timeout=30)
    while not all(gone(pid) for pid in workers):
        assert time.monotonic() - killed < 60, "the workers outlived their agent by a minute"
        time.sleep(0.5)
    seconds = time.monotonic() - killed
    with open(out / ".partial/lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free: a rerun is not refused
    print(f"workers gone {seconds:.1f} s after their agent was killed")
    assert seconds < 60
    assert list((out / ".partial/chunks").glob("*.parquet"))  # finished chunks kept
