"""Every example in the README, the Makefile's demo and the demo artifact's dataset card runs, as written,
on the artifact `make demo` builds (tests/demo_fixture.py builds it once per session, with the same
command). The examples name `demo-artifacts`; each test runs from a folder where that name is a link
to the fixture's artifact, so nothing in the examples is rewritten (the card's `ORG/NAME`, the repo
it will be pushed to, is the only placeholder replaced)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.register_assert_rewrite("artifact_fixtures")

from artifact_fixtures import run_python, subprocess_env, tiny_bert  # noqa: E402,F401 - tiny_bert: a fixture
from ft_artifacts.cli import main  # noqa: E402

pytestmark = pytest.mark.integration
pytest_plugins = ["demo_fixture"]

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
ARTIFACT_COMMANDS = ("query", "info", "report")  # the commands that read an artifact


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, re.S)


def cli_examples(text: str, commands=ARTIFACT_COMMANDS) -> list[list[str]]:
    """Every `ft-artifacts COMMAND ...` of `text` (inline code, code blocks, Makefile lines), as argv."""
    found = re.findall(r"(?:`|^\s*|\$\(BIN\)/)ft-artifacts ((?:%s)\b[^`\n]*)" % "|".join(commands), text, re.M)
    argvs = [shlex.split(line.replace("$(DEMO_OUT)", "demo-artifacts")) for line in found]
    return [argv for argv in argvs if len(argv) > 1]  # `ft-artifacts query` alone names a command, not an example


@pytest.fixture()
def demo_cwd(demo_artifact, tmp_path, monkeypatch) -> Path:
    (tmp_path / "demo-artifacts").symlink_to(demo_artifact, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_blocks(blocks: list[str], cwd: Path) -> None:
    assert blocks
    for block in blocks:
        proc = run_python(block, cwd=cwd, env=subprocess_env(HF_HOME=str(cwd / "hf"),
                                                             HF_DATASETS_CACHE=str(cwd / "cache")))
        assert proc.returncode == 0, (block, proc.stderr[-2000:])


def test_readme_python_examples_run_on_the_demo_artifact(demo_cwd):
    blocks = [b for b in python_blocks(README) if "load(" in b or "load_dataset(" in b]
    assert len(blocks) >= 2  # ft_artifacts.load and plain datasets
    run_blocks(blocks, demo_cwd)


def artifact_examples() -> list[list[str]]:
    examples = cli_examples(README) + cli_examples((REPO / "Makefile").read_text())
    assert {argv[0] for argv in examples} == set(ARTIFACT_COMMANDS), examples
    return examples


@pytest.fixture()
def directions_cwd(demo_cwd, tiny_bert, tmp_path_factory) -> Path:
    """`demo-directions` beside `demo-artifacts`: the README's directions examples name it. Built as the README's
    build example says, with a probe.npy of three rows in layer 3, on the tiny BERT and 6 steps (the examples
    query its labels, `L3.probe[0]`, and list them; the demo model's own build is the same command)."""
    import numpy as np

    from artifact_fixtures import HIDDEN

    root = tmp_path_factory.mktemp("directions-example")
    np.save(root / "probe.npy", np.random.default_rng(0).standard_normal((3, HIDDEN)).astype(np.float32))
    out = root / "demo-directions"
    result = CliRunner().invoke(main, ["build", "--preset", "demo", "--steps", "6", "--device", "cpu", "--model",
                                       str(tiny_bert), "--out", str(out), "--directions", str(root / "probe.npy"),
                                       "--directions-layer", "3"])
    assert result.exit_code == 0, result.output
    (demo_cwd / "demo-directions").symlink_to(out, target_is_directory=True)
    return demo_cwd


def test_readme_and_makefile_commands_run_on_the_demo_artifact(directions_cwd):
    """Queries and info; `report` (a minute on the demo artifact) runs in the slow test below."""
    examples = [a for a in artifact_examples() if a[0] != "report"]
    assert any("demo-directions" in argv for argv in examples)  # the directions examples are among them
    for argv in examples:
        assert {"demo-artifacts", "demo-directions"} & set(argv), f"README example {argv} does not name the artifact it needs"
        result = CliRunner().invoke(main, argv)
        assert result.exit_code == 0, (argv, result.output)


def test_card_examples_run_on_the_artifact_they_describe(demo_cwd):
    card = (demo_cwd / "demo-artifacts" / "README.md").read_text(encoding="utf-8")
    blocks = [b.replace('snapshot_download("ORG/NAME", repo_type="dataset")', '"demo-artifacts"')
              .replace('"ORG/NAME"', '"demo-artifacts"') for b in python_blocks(card)]
    assert any("get_nearest_examples" in b and "np.linalg.norm" in b for b in blocks)  # plain datasets + FAISS
    assert any("ft_artifacts.load(" in b for b in blocks) and any("load_dataset(" in b for b in blocks)
    run_blocks(blocks, demo_cwd)


@pytest.mark.slow
def test_readme_report_examples_run_on_the_demo_artifact(demo_cwd):
    for argv in [a for a in artifact_examples() if a[0] == "report"]:
        assert "demo-artifacts" in argv
        result = CliRunner().invoke(main, argv)
        assert result.exit_code == 0, (argv, result.output)


@pytest.mark.slow
def test_readme_textualize_examples_run(tmp_path, monkeypatch):
    """The README's `textualize` examples need only the packaged MiniLM (minutes on CPU)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # the vocabulary scan is cached there, not in the user's
    examples = cli_examples(README, ("textualize",))
    assert len(examples) >= 2
    for argv in examples:
        result = CliRunner().invoke(main, argv)
        assert result.exit_code == 0, (argv, result.output)
