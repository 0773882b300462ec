"""The README stays true: every CLI command is documented, its make targets exist, CI runs them."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from ft_artifacts.cli import main

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def test_every_command_is_documented_in_readme_and_has_help():
    assert main.commands, "the CLI has no commands"
    for name, command in main.commands.items():
        assert f"`ft-artifacts {name}`" in README, f"ft-artifacts {name} is not documented in README.md"
        result = CliRunner().invoke(main, [name, "--help"])
        first_sentence = " ".join(command.help.split("\n\n")[0].split())
        assert result.exit_code == 0 and first_sentence in " ".join(result.output.split())


def test_readme_commands_are_make_targets_and_ci_runs_the_test_command():
    makefile = (REPO / "Makefile").read_text()
    for target in ("demo", "test"):
        assert f"make {target}" in README
        assert re.search(rf"^{target}: \$\(STAMP\)", makefile, re.M), f"`make {target}` must depend on setup"
    assert re.search(r"^make test$", (REPO / ".ci/run").read_text(), re.M)
    assert "torch==2.13.0" in makefile


def test_readme_options_exist():
    """Options the README shows for each command are real options of that command."""
    for name, command in main.commands.items():
        known = {opt for param in command.params for opt in getattr(param, "opts", [])}
        for row in re.findall(rf"`ft-artifacts {name}[^`]*`", README):
            for option in re.findall(r"(?<![\w-])(--[a-z][a-z-]*|-k)\b", row):
                assert option in known, f"README shows {option} for ft-artifacts {name}, which has no such option"


def test_makefile_commands_use_real_options():
    """`make demo` runs these commands: every option they pass exists on that command."""
    makefile = (REPO / "Makefile").read_text()
    lines = re.findall(r"ft-artifacts (\w+)([^\n]*)", makefile)
    assert lines, "the Makefile runs no ft-artifacts command"
    for name, rest in lines:
        known = {opt for param in main.commands[name].params for opt in getattr(param, "opts", [])}
        for option in re.findall(r"(?<![\w-])(--[a-z][a-z-]*|-[a-z])\b", rest):
            assert option in known, f"the Makefile passes {option} to ft-artifacts {name}, which has no such option"


def test_readme_layout_block_is_what_a_build_writes():
    """The README's artifact layout lists exactly the paths a pack writes (`manifest.artifact_paths`), the
    optional `directions` config's included."""
    import re

    from ft_artifacts.manifest import artifact_paths

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = text.split("## Artifact layout", 1)[1].split("```", 2)[1]
    listed = []
    for line in block.strip().splitlines():
        path = line.split()[0]
        brace = re.fullmatch(r"(.*)\{([^}]*)\}(.*)", path)  # figures/pca.{png,svg}
        listed += [brace[1] + part + brace[3] for part in brace[2].split(",")] if brace else [path]
    assert sorted(listed) == sorted(artifact_paths(directions=True))  # the optional config's files included
