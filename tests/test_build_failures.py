"""Failures of a build on a GPU, proven on CPU: out of memory is one line naming --chunk-rows and keeps the
finished chunks; under torchrun (gloo), a rank that fails stops every rank within a minute with its message.

The failures are raised through the build's own progress callback (a real torch.OutOfMemoryError, as the
CUDA allocator raises it, at a chosen step), so everything around them is the real build."""

from __future__ import annotations

import fcntl
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

pytest.register_assert_rewrite("artifact_fixtures")

from artifact_fixtures import subprocess_env  # noqa: E402

pytest_plugins = ["artifact_fixtures"]

BIN = Path(sys.executable).parent
STEPS = 3


def _oom_in_second_chunk(name: str):
    def report(done: int, _total: int) -> None:
        if name.startswith("optimizing") and done > STEPS:  # a step of the second chunk
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 1 GiB free)")
    return report


def test_out_of_memory_is_one_line_naming_chunk_rows_and_keeps_finished_chunks(tiny_bert, tmp_path):
    from ft_artifacts.builders.build import build
    from ft_artifacts.builders.presets import preset
    from ft_artifacts.errors import DeviceMemoryError, FTError

    config = preset("demo", model=str(tiny_bert), steps=STEPS, chunk_rows=40)
    out = tmp_path / "art"
    with pytest.raises(DeviceMemoryError) as caught:
        build(config, out, progress=_oom_in_second_chunk)
    message = str(caught.value)
    assert isinstance(caught.value, FTError) and "\n" not in message
    assert "ran out of memory" in message and "--chunk-rows 20" in message and "1 finished chunk(s)" in message
    chunks = out / ".partial/chunks"
    kept = {p.name: p.stat().st_mtime_ns for p in chunks.glob("*.parquet")}
    assert list(kept) == ["neurons-00000.parquet"]

    build(config, out)  # the same command again resumes: the finished chunk is not optimized again
    assert (out / "build_info.json").is_file()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(*command: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(_free_port()),
                             "--no-python", *command], cwd=cwd, env=subprocess_env(OMP_NUM_THREADS="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _error_lines(stderr: str) -> list[str]:
    """The ranks' `Error: ...` lines (torchrun may prefix a worker's lines with `[rankN]:`)."""
    return sorted(line.split("]:", 1)[-1] for line in stderr.splitlines() if "Error: " in line.split("]:", 1)[-1][:7])


RANK_SCRIPT = textwrap.dedent("""
    import sys, time, torch
    from ft_artifacts.builders.build import build
    from ft_artifacts.builders.distributed import leave, world_from_env
    from ft_artifacts.builders.presets import preset
    from ft_artifacts.errors import FTError

    model, out, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    world, device = world_from_env("cpu")

    def progress(name):
        def report(done, total):
            if world.rank == 1 and name.startswith("optimizing") and done > steps:
                print("FAILING-AT=" + repr(time.time()), file=sys.stderr, flush=True)
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return report

    try:
        build(preset("demo", model=model, steps=steps, chunk_rows=16), out, device=device, progress=progress,
              world=world)
    except FTError as exc:
        print(f"Error: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
    finally:
        leave(world)
""")


@pytest.mark.slow  # about 35 s: two processes optimize long chunks
def test_a_failing_rank_stops_every_rank_within_a_minute_with_its_message(tiny_bert, tmp_path):
    """Rank 1 runs out of memory in its second chunk while rank 0 is in the middle of a long chunk."""
    steps = 400  # each chunk takes rank 0 many seconds: it is optimizing when rank 1 fails
    proc = _torchrun(sys.executable, "-c", RANK_SCRIPT, str(tiny_bert), str(tmp_path / "art"), str(steps),
                     cwd=tmp_path)
    _, err = proc.communicate(timeout=600)
    ended = time.time()
    assert proc.returncode != 0
    failed_at = [float(m) for m in re.findall(r"FAILING-AT=([0-9.]+)", err)]
    assert len(failed_at) == 1, err[-4000:]
    assert ended - failed_at[0] < 60, err[-4000:]
    errors = _error_lines(err)
    assert len(errors) == 2, err[-4000:]
    own, echoed = sorted(errors, key=lambda line: line.startswith("Error: rank 1: "))
    assert own.startswith("Error: cpu ran out of memory optimizing ") and "--chunk-rows 8" in own
    assert echoed == "Error: rank 1: " + own[len("Error: "):]
    assert not (tmp_path / "art/build_info.json").exists()


def test_a_refused_lock_on_rank_0_stops_rank_1_with_its_message(tiny_bert, tmp_path):
    """Rank 0 cannot take the build's lock; rank 1, waiting at the first barrier, stops with its message."""
    out = tmp_path / "busy"
    (out / ".partial").mkdir(parents=True)
    with open(out / ".partial/lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        started = time.monotonic()
        proc = _torchrun(str(BIN / "ft-artifacts"), "build", "--preset", "demo", "--steps", "2", "--device", "cpu",
                         "--model", str(tiny_bert), "--out", str(out), cwd=tmp_path)
        _, err = proc.communicate(timeout=300)
    assert proc.returncode != 0 and time.monotonic() - started < 120
    message = f"another build is writing to {out}; wait for it to finish, or pass another --out"
    assert _error_lines(err) == [f"Error: {message}", f"Error: rank 0: {message}"], err[-4000:]
    assert "Traceback" not in "".join(line for line in err.splitlines() if line.startswith("[rank"))
