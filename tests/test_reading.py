"""Reading is light: the loader, queries, `query` and `info` import neither torch, transformers nor the writer,
and a file unchanged since it last checked out is not hashed again (`--verify` / `full_verify` hash all)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

pytest.register_assert_rewrite("artifact_fixtures")

from artifact_fixtures import run_python, subprocess_env  # noqa: E402

import ft_artifacts  # noqa: E402
from ft_artifacts.errors import ChecksumError  # noqa: E402

pytest_plugins = ["artifact_fixtures"]

HEAVY = ("torch", "transformers", "ft_artifacts.pack", "ft_artifacts.model", "ft_artifacts.builders.build")

READ = """
import json, sys
import ft_artifacts
from ft_artifacts.cli import main
art = ft_artifacts.load(sys.argv[1])
neuron = art._names["neurons"][0]
art.nearest_words(neuron=neuron, k=3); art.nearest_words(group=art._names["word_groups"][0], k=3)
art.neurons_near(word="people", k=3); len(art.neurons)
for args in (["query", sys.argv[1], "--neuron", neuron], ["info", sys.argv[1]], ["query", sys.argv[1], "--word", "people"]):
    try:
        main.main(args, standalone_mode=False)
    except SystemExit:
        pass
print(json.dumps(sorted(m for m in %r if m in sys.modules)))
""" % (HEAVY,)


def test_reading_imports_neither_torch_nor_the_writer(tiny_artifact: Path, tmp_path: Path) -> None:
    proc = run_python(READ, str(tiny_artifact), cwd=tmp_path,
                      env=subprocess_env(FT_ARTIFACTS_CACHE=str(tmp_path / "cache")))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


@pytest.fixture
def hashes(monkeypatch) -> list[str]:
    """Every file hashed by the verifier, in order."""
    import ft_artifacts.files as files

    seen: list[str] = []
    real = files.sha256_file

    def spy(path, *args, **kwargs):
        seen.append(Path(path).name)
        return real(path, *args, **kwargs)

    def spy_handle(handle, *args, **kwargs):
        seen.append(Path(handle.name).name)
        return real_handle(handle, *args, **kwargs)

    real_handle = files.sha256_handle
    monkeypatch.setattr(files, "sha256_file", spy)
    monkeypatch.setattr(files, "sha256_handle", spy_handle)
    return seen


def test_unchanged_files_are_not_hashed_again(tiny_artifact: Path, tmp_path: Path, monkeypatch, hashes) -> None:
    monkeypatch.setenv("FT_ARTIFACTS_CACHE", str(tmp_path / "cache"))
    art = Path(shutil.copytree(tiny_artifact, tmp_path / "copy"))
    listed = len(ft_artifacts.load(art).manifest.files)
    assert len(hashes) == listed  # the first load hashes every file
    hashes.clear()
    ft_artifacts.load(art)
    assert hashes == []  # unchanged: nothing hashed
    ft_artifacts.load(art, full_verify=True)
    assert len(hashes) == listed  # forced: everything hashed

    # Same size and mtime, different bytes: the inode's ctime moved, so it is hashed and caught.
    target = art / "data/neurons/train-00000-of-00001.parquet"
    before = target.stat()
    data = bytearray(target.read_bytes())
    data[200] ^= 0xFF
    target.write_bytes(bytes(data))
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    hashes.clear()
    with pytest.raises(ChecksumError, match="data/neurons/train-00000-of-00001.parquet"):
        ft_artifacts.load(art)
    assert hashes == [target.name]


def test_an_unwritable_cache_only_costs_hashing(tiny_artifact: Path, tmp_path: Path, monkeypatch, hashes) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("FT_ARTIFACTS_CACHE", str(blocker / "cache"))
    ft_artifacts.load(tiny_artifact)
    ft_artifacts.load(tiny_artifact)
    assert len(hashes) == 2 * len(ft_artifacts.load(tiny_artifact, verify=False).manifest.files)


def test_the_cache_forgets_deleted_artifacts(tiny_artifact: Path, tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("FT_ARTIFACTS_CACHE", str(cache))
    gone, kept = (Path(shutil.copytree(tiny_artifact, tmp_path / name)) for name in ("gone", "kept"))
    ft_artifacts.load(gone)
    ft_artifacts.load(kept)

    def cached() -> set[str]:
        return {Path(p).relative_to(tmp_path).parts[0] for p in json.loads((cache / "verified.json").read_text())}

    assert cached() == {"gone", "kept"}
    shutil.rmtree(gone)
    card = kept / "README.md"  # a changed byte, same size: the next check hashes it and saves the cache
    card.write_bytes(card.read_bytes().replace(b"#", b"%", 1))
    with pytest.raises(ChecksumError):
        ft_artifacts.load(kept)
    assert cached() == {"kept"}
