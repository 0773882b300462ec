"""The built wheel, installed non-editable, carries everything the installed command needs."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(out), str(REPO)],
        check=True, cwd=out,
    )
    (path,) = out.glob("ft_artifacts-*.whl")
    return path


def test_wheel_ships_builders_cards_and_console_script(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for required in ("ft_artifacts/cli.py", "ft_artifacts/builders/build.py", "ft_artifacts/builders/curated_words.txt",
                     "ft_artifacts/cards/dataset_card.md", "ft_artifacts/explore.py", "ft_artifacts/explorer/index.html",
                     "ft_artifacts/explorer/app.js", "ft_artifacts/explorer/style.css", "ft_artifacts/explorer/favicon.svg"):
        assert required in names, f"{required} missing from the wheel"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "ft-artifacts = ft_artifacts.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)


def test_installed_copy_works_outside_the_source_tree(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, cwd=tmp_path)
    script = (
        "import ft_artifacts, ft_artifacts.builders.sampling as s, ft_artifacts.pack as p\n"
        "from importlib import resources\n"
        "assert ft_artifacts.__file__.startswith(sys.argv[1]), ft_artifacts.__file__\n"
        "assert len(s.curated_words()) == 20\n"
        "assert '{{ card_data }}' in resources.files('ft_artifacts.cards').joinpath('dataset_card.md').read_text()\n"
        "from ft_artifacts.explore import ASSETS, _asset\n"
        "assert all(_asset(name) for name in ASSETS)\n"
        "from ft_artifacts.cli import main\n"
        "main(['--help'])\n"
    )
    env = dict(os.environ, PYTHONPATH=str(target))
    run = subprocess.run([sys.executable, "-c", "import sys\n" + script, str(target)], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    for command in ("textualize", "build", "query", "info", "push", "explore"):
        assert command in run.stdout


def test_extras_split_building_from_reading(wheel):
    """The base install reads artifacts without torch; `[build]` adds torch and transformers; `[read]` exists."""
    archive = zipfile.ZipFile(wheel)
    metadata = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    base = [r for r in requires if "extra ==" not in r]
    assert not any(r.startswith(("torch", "transformers")) for r in base), base
    assert any(r.startswith("faiss-cpu") for r in base) and any(r.startswith("pyarrow") for r in base)
    build = [r for r in requires if 'extra == "build"' in r]
    assert any(r.startswith("torch") for r in build) and any(r.startswith("transformers") for r in build), build
    assert "Provides-Extra: read" in metadata
