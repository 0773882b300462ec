"""Every error is one line: library errors, OSErrors ("PATH: reason"), unexpected ones ("... rerun with -v for
the traceback"); -v shows the traceback and raises ft_artifacts' own loggers only; -v/-q go before or after the
subcommand; --out is checked before anything slow starts."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ft_artifacts import cli
from ft_artifacts.cli import main

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "format2"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line(result) -> str:
    assert result.exit_code != 0 and result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def a_file(tmp_path) -> Path:
    path = tmp_path / "hostname"
    path.write_text("not a folder\n")
    return path


def test_report_out_under_a_file_is_one_line(a_file):
    line = one_line(run("report", FIXTURE, "--out", a_file / "sub"))
    assert f"--out {a_file / 'sub'}: {a_file} is a file" in line


def test_report_out_that_is_a_file_is_one_line(a_file):
    line = one_line(run("report", FIXTURE, "--out", a_file))  # click's own check of the option, or ours
    assert "--out" in line and str(a_file) in line and "is a file" in line


def test_build_out_is_checked_before_the_model_loads(a_file, tmp_path):
    # the model does not exist: had it been loaded first, the error would name the model
    line = one_line(run("build", "--model", tmp_path / "no-such-model", "--out", a_file / "sub"))
    assert "--out" in line and "is a file" in line and "no-such-model" not in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_out_under_a_read_only_folder_is_one_line(tmp_path):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        assert "is not writable" in one_line(run("report", FIXTURE, "--out", parent / "r"))
    finally:
        parent.chmod(0o755)


def test_an_oserror_is_path_colon_reason(tmp_path):
    missing = tmp_path / "nowhere" / "file.txt"

    @cli._fail_cleanly
    def reads():
        return missing.read_text()

    with pytest.raises(click.ClickException) as caught:
        reads()
    assert caught.value.message == f"{missing}: No such file or directory"


def test_an_unexpected_error_is_one_line_and_v_shows_the_traceback(tmp_path):
    @click.command()
    @cli._fail_cleanly
    def divide():
        return 1 / 0

    group = cli._OneLineErrors(commands={"divide": divide}, params=main.params, callback=main.callback)
    result = CliRunner().invoke(group, ["divide"])
    line = one_line(result)
    assert line == "Error: unexpected ZeroDivisionError: division by zero; rerun with -v for the traceback"
    for args in (["-v", "divide"], ["divide", "-v"], ["divide", "--verbose"]):  # before or after the subcommand
        result = CliRunner().invoke(group, args)
        assert result.exit_code == 1 and "Traceback (most recent call last)" in result.stderr, args
        assert result.stderr.rstrip().splitlines()[-1] == line


def test_verbose_raises_only_ft_artifacts_loggers():
    root, other = logging.getLogger(), logging.getLogger("httpx")
    before = (root.level, other.level, len(root.handlers))
    try:
        result = run("info", FIXTURE, "-v")
        assert result.exit_code == 0, result.output
        assert logging.getLogger("ft_artifacts").level == logging.INFO
        assert (root.level, other.level, len(root.handlers)) == before
        result = run("-q", "info", FIXTURE)
        assert result.exit_code == 0 and logging.getLogger("ft_artifacts").level == logging.ERROR
        assert "exclude each other" in one_line(run("-v", "-q", "info", FIXTURE))
    finally:
        run("info", FIXTURE)  # back to the default level
    assert logging.getLogger("ft_artifacts").level == logging.WARNING


def test_a_file_size_limit_is_one_line_saying_what_to_do(tmp_path):
    """A real EFBIG (RLIMIT_FSIZE, which Python meets as an OSError rather than SIGXFSZ): one line, no
    traceback, naming the limit and the way out."""
    import resource
    import subprocess
    import sys

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    done = subprocess.run([sys.executable, "-m", "ft_artifacts.cli", "report", str(FIXTURE), "--out", str(tmp_path / "r")],
                          capture_output=True, text=True, preexec_fn=limit, timeout=300)
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ") and "File too large" in last and "ulimit -f" in last, done.stderr
    assert "Traceback" not in done.stderr
