"""Resume state verified like an artifact: a damaged, swapped or edited chunk, or a damaged scan, is
redone (named in one log line) and the resumed build equals the uninterrupted one byte for byte; a
`.partial/` holding foreign files or being a link is refused untouched; SIGTERM stops a build as Ctrl-C."""

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

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.register_assert_rewrite("artifact_fixtures")

from artifact_fixtures import assert_same_artifact, subprocess_env  # noqa: E402
from test_build import BUILD_SCRIPT, build_until_killed, resumed  # noqa: E402

pytest_plugins = ["artifact_fixtures"]


@pytest.fixture(scope="module")
def killed(tiny_config, tmp_path_factory) -> Path:
    """A build killed while optimizing: three neurons chunks and one word_groups chunk finished."""
    root = tmp_path_factory.mktemp("killed")
    out = root / "out"
    steps = tiny_config.optim.steps
    build_until_killed(tiny_config, out, "optimizing", 4 * steps + steps // 3, root)
    assert len(list((out / ".partial/chunks").glob("*.parquet"))) == 4
    return out


def resume_copy(killed: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(killed, out, symlinks=True)
    return out


def chunks(out: Path) -> list[Path]:
    return sorted((out / ".partial/chunks").glob("*.parquet"))


def finish(tiny_config, out: Path, caplog) -> str:
    from ft_artifacts.builders.build import build

    caplog.clear()
    caplog.set_level(logging.INFO, logger="ft_artifacts.builders")
    build(tiny_config, out)
    return caplog.text


def test_a_flipped_byte_in_a_chunk_is_redone(killed, tiny_config, tiny_artifact, tmp_path, caplog) -> None:
    out = resume_copy(killed, tmp_path)
    victim = chunks(out)[1]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    log = finish(tiny_config, out, caplog)
    assert f"chunk {victim.name} is unreadable or changed ({victim.name} differs from the sha256" in log
    assert resumed(log) == {p.name for p in chunks(killed)} - {victim.name}
    assert_same_artifact(out, tiny_artifact)


def test_swapped_chunks_are_redone(killed, tiny_config, tiny_artifact, tmp_path, caplog) -> None:
    out = resume_copy(killed, tmp_path)
    a, b = chunks(out)[0], chunks(out)[1]
    for suffix in (".parquet", ".json"):  # each chunk swapped together with its record
        x, y = a.with_suffix(suffix), b.with_suffix(suffix)
        x.rename(x.with_suffix(".swap"))
        y.rename(x)
        x.with_suffix(".swap").rename(y)
    log = finish(tiny_config, out, caplog)
    for victim in (a, b):
        assert f"chunk {victim.name} is unreadable or changed ({victim.with_suffix('.json').name} records another" in log
    assert resumed(log) == {p.name for p in chunks(killed)} - {a.name, b.name}
    assert_same_artifact(out, tiny_artifact)


def test_a_chunk_edited_into_other_valid_parquet_is_redone(killed, tiny_config, tiny_artifact, tmp_path,
                                                           caplog) -> None:
    out = resume_copy(killed, tmp_path)
    victim = chunks(out)[2]
    table = pq.read_table(victim)
    column = table.column("activation").to_pylist()
    column[0] += 1.0
    pq.write_table(table.set_column(table.schema.get_field_index("activation"), "activation",
                                    pa.array(column, table.schema.field("activation").type)), victim)
    assert pq.read_table(victim).num_rows == table.num_rows  # still valid parquet of the right shape
    log = finish(tiny_config, out, caplog)
    assert f"chunk {victim.name} is unreadable or changed" in log
    assert_same_artifact(out, tiny_artifact)


@pytest.mark.parametrize("damage", ["flip", "record"])
def test_a_damaged_scan_is_planned_again_not_a_traceback(killed, tiny_config, tiny_artifact, tmp_path, caplog,
                                                         damage) -> None:
    out = resume_copy(killed, tmp_path)
    target = out / ".partial" / ("scan.npz" if damage == "flip" else "plan.record.json")
    data = bytearray(target.read_bytes())
    data[len(data) // 3] ^= 0x40
    target.write_bytes(bytes(data))
    log = finish(tiny_config, out, caplog)
    named = "scan.npz differs from the sha256" if damage == "flip" else "plan.record.json"
    assert [line for line in log.splitlines() if "planning again" in line and named in line], log
    assert "resuming: plan found" not in log
    assert_same_artifact(out, tiny_artifact)


def test_a_chunk_changed_after_it_was_checked_stops_the_pack(killed, tiny_config, tmp_path, monkeypatch) -> None:
    """The pack decodes chunks from the bytes it checks: a chunk changed between the optimize stage's
    check and the pack is refused, not packed."""
    from ft_artifacts.builders import build as build_module
    from ft_artifacts.errors import ArtifactError

    out = resume_copy(killed, tmp_path)
    real = build_module._optimize

    def optimize_then_damage(*args, **kwargs):
        files = real(*args, **kwargs)
        victim = files["neurons"][0]
        victim.write_bytes(victim.read_bytes()[:-1] + b"\0")
        return files

    monkeypatch.setattr(build_module, "_optimize", optimize_then_damage)
    with pytest.raises(ArtifactError, match="neurons-00000.parquet changed after it was optimized"):
        build_module.build(tiny_config, out)
    assert not (out / "build_info.json").exists()


def test_foreign_files_in_partial_are_refused_untouched(killed, tiny_config, tmp_path) -> None:
    from ft_artifacts.builders.build import build
    from ft_artifacts.errors import ArtifactError

    for where in (".partial/notes.txt", ".partial/tmp/keep-me", ".partial/chunks/neurons-00000.parquet.bak"):
        out = tmp_path / where.replace("/", "_")
        shutil.copytree(killed, out)
        (out / where).write_text("not the build's")
        before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
        with pytest.raises(ArtifactError, match="holds what a build does not write"):
            build(tiny_config, out)
        assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_symlinked_partial_is_refused_and_its_target_untouched(tiny_config, tmp_path) -> None:
    from ft_artifacts.builders.build import build
    from ft_artifacts.errors import ArtifactError

    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "tmp").mkdir(parents=True)
    (elsewhere / "tmp" / ".x.tmp").write_text("someone's")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".partial").symlink_to(elsewhere)
    with pytest.raises(ArtifactError, match="is a symbolic link"):
        build(tiny_config, out)
    assert sorted(p.relative_to(elsewhere).as_posix() for p in elsewhere.rglob("*")) == ["tmp", "tmp/.x.tmp"]


def test_a_finished_build_clears_only_its_own_files(killed, tiny_config, tmp_path) -> None:
    from ft_artifacts.builders import resume

    out = resume_copy(killed, tmp_path)
    link_target = tmp_path / "target.txt"
    link_target.write_text("keep")
    work = out / ".partial"
    assert resume.foreign_entries(work) == []
    (work / "tmp").mkdir(exist_ok=True)
    (work / "tmp" / "link.tmp").symlink_to(link_target)  # a link is foreign, never followed
    assert resume.foreign_entries(work) == ["tmp/link.tmp"]
    resume.clear(work)
    assert link_target.read_text() == "keep"
    assert sorted(p.relative_to(work).as_posix() for p in work.rglob("*")) == ["tmp", "tmp/link.tmp"]


SIGTERM_SCRIPT = BUILD_SCRIPT.replace("build(config, Path(sys.argv[2]), progress=progress)",
                                      "from ft_artifacts.cli import _fail_cleanly\n"
                                      "_fail_cleanly(lambda: build(config, Path(sys.argv[2]), progress=progress))()")


def test_sigterm_stops_a_build_like_ctrl_c(tiny_config, tiny_artifact, tmp_path, caplog) -> None:
    out = tmp_path / "out"
    steps = tiny_config.optim.steps
    err = tmp_path / "err.log"
    with open(err, "w") as handle:
        proc = subprocess.Popen([sys.executable, "-c", SIGTERM_SCRIPT, json.dumps(tiny_config.to_dict()), str(out),
                                 "optimizing", str(2 * steps + 1)], cwd=tmp_path, env=subprocess_env(),
                                stdout=subprocess.PIPE, stderr=handle, text=True)
    watchdog = threading.Timer(240, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout.readline().startswith("STOPPED")
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) == 130
    finally:
        watchdog.cancel()
        proc.kill()
        proc.stdout.close()
    text = err.read_text()
    assert text.splitlines()[-1] == "interrupted" and "Traceback" not in text
    assert len(chunks(out)) == 2 and not (out / "data").exists()
    log = finish(tiny_config, out, caplog)
    assert resumed(log) == {"neurons-00000.parquet", "neurons-00001.parquet"}
    assert_same_artifact(out, tiny_artifact)


def test_an_out_that_cannot_be_created_is_an_os_error_naming_it_before_the_model_loads(tiny_config, tmp_path,
                                                                                       monkeypatch) -> None:
    from ft_artifacts.builders import build as build_module

    monkeypatch.setattr(build_module, "load_model", lambda *a, **k: pytest.fail("the model loaded first"))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(NotADirectoryError) as error:
        build_module.build(tiny_config, blocker / "out")
    assert error.value.filename == str(blocker)
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(PermissionError) as error:
            build_module.build(tiny_config, locked / "out")
        assert error.value.filename == str(locked)
