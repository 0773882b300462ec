"""One rule says whether a spec names a local folder or a Hub repo id (ft_artifacts.sources), and the model
loader and the artifact loader both follow it: an existing path is a folder however it is spelled; else
`name` or `org/name` is a Hub id; else (`./x`, `~/x`, `a/b/c`) it is a folder that does not exist."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import ft_artifacts
from ft_artifacts.errors import ArtifactError, ModelLoadError
from ft_artifacts.sources import FOLDER, HUB, MISSING, is_hub_id, source_kind

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "format2"


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch) -> Path:
    """An empty working folder, and a HOME beside it, so relative and `~` specs resolve in the test's folders."""
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir(), home.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    return work


@pytest.mark.parametrize("spec,kind", [
    ("org/name", HUB), ("name", HUB), ("bert-base-uncased", HUB), ("sentence-transformers/all-MiniLM-L6-v2", HUB),
    ("./org/name", MISSING), ("./name", MISSING), ("a/b/c", MISSING), ("~/x", MISSING), ("/abs/x", MISSING),
    ("org/", MISSING), ("/name", MISSING), ("", MISSING), ("org--x/name", MISSING), ("org/na..me", MISSING),
    ("-org/name", MISSING), ("org/name.", MISSING), ("n" * 97, MISSING),
])
def test_a_spec_that_is_not_a_path_here_is_a_hub_id_only_if_the_hub_could_spell_it(cwd: Path, spec: str, kind: str):
    assert source_kind(spec) == (kind, spec)
    assert is_hub_id(spec) == (kind == HUB)


def test_an_existing_path_is_a_folder_however_it_is_spelled(cwd: Path):
    (cwd / "org" / "name").mkdir(parents=True)
    (cwd / "name").mkdir()
    (Path.home() / "x").mkdir()
    (cwd / "a" / "b" / "c").mkdir(parents=True)
    for spec in ("org/name", "./org/name", "name", "a/b/c"):
        assert source_kind(spec) == (FOLDER, str(Path(spec)))
    assert source_kind("~/x") == (FOLDER, str(Path.home() / "x"))
    assert source_kind(Path("org/name")) == (FOLDER, "org/name")


def test_a_path_object_is_never_a_hub_id(cwd: Path):
    assert source_kind(Path("org/name")) == (MISSING, "org/name")


# --- the model loader follows it ------------------------------------------------------------------------------------

def test_the_model_loader_follows_the_rule(cwd: Path):
    from ft_artifacts.model import resolve_source

    assert resolve_source("org/name") == ("org/name", "org/name")  # a Hub id, left to transformers
    assert resolve_source("name") == ("name", "name")
    for spec in ("./org/name", "a/b/c", "~/x"):
        with pytest.raises(ModelLoadError, match=f"model folder {spec} does not exist"):
            resolve_source(spec)
    (cwd / "org" / "name").mkdir(parents=True)  # now a folder: read as one (and refused for lacking a model)
    (Path.home() / "x").mkdir()
    for spec in ("org/name", "~/x"):
        with pytest.raises(ModelLoadError, match="folder has no config.json"):
            resolve_source(spec)


# --- the artifact loader follows it ---------------------------------------------------------------------------------

def test_the_artifact_loader_follows_the_rule(cwd: Path, tmp_path: Path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # a Hub id then reads only the (empty) cache
    cache = str(tmp_path / "cache")
    for spec in ("org/name", "name"):  # Hub ids: looked up on the Hub (here: its cache), never as folders
        with pytest.raises(ArtifactError, match=f"^{spec}@main is not in the local cache"):
            ft_artifacts.load(spec, cache_dir=cache)
    for spec in ("./org/name", "a/b/c", "~/x"):
        with pytest.raises(ArtifactError, match="no such artifact folder"):
            ft_artifacts.load(spec, cache_dir=cache)
    shutil.copytree(FIXTURE, cwd / "org" / "name")
    shutil.copytree(FIXTURE, Path.home() / "x")
    for spec in ("org/name", "./org/name", "~/x"):  # existing folders: read locally, whatever their spelling
        art = ft_artifacts.load(spec, cache_dir=cache)
        assert Path(art.path).resolve() == Path(os.path.expanduser(spec)).resolve()
        assert len(art.neurons) == art.manifest.configs["neurons"].rows
