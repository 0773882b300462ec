"""The demo preset's artifact (what `make demo` builds from the packaged MiniLM), built once per session and
shared by every test module that reads it: `pytest_plugins = ["demo_fixture"]`. Tests must not modify it."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner


@pytest.fixture(scope="session")
def demo_artifact(tmp_path_factory) -> Path:
    from ft_artifacts.cli import main

    out = tmp_path_factory.mktemp("demo") / "artifact"
    result = CliRunner().invoke(main, ["build", "--preset", "demo", "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, (result.output, result.exception)
    return out
