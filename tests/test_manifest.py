"""The manifest is the contract: build_info.json is read through one validating reader, a build writes only
its own files, push uploads exactly the listed files, and the loader reads exactly the listed files."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

pytest.register_assert_rewrite("artifact_fixtures")

from artifact_fixtures import tiny_build_config  # noqa: E402

import ft_artifacts  # noqa: E402
from ft_artifacts.errors import ArtifactError, ChecksumError  # noqa: E402
from ft_artifacts.manifest import BUILD_INFO, Manifest, artifact_paths, read_manifest, write_manifest  # noqa: E402

pytest_plugins = ["artifact_fixtures"]

NEURONS_FILE = "data/neurons/train-00000-of-00001.parquet"


@pytest.fixture
def copied(tiny_artifact: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_artifact, tmp_path / "copy"))


def edit_info(root: Path, change) -> None:
    """Rewrite build_info.json after `change(dict)` edits it in place (bypassing the writer's checks)."""
    info = json.loads((root / BUILD_INFO).read_text())
    change(info)
    (root / BUILD_INFO).write_text(json.dumps(info))


# --- reading validates everything ----------------------------------------------------------------------------------

def test_the_manifest_round_trips(tiny_artifact: Path) -> None:
    manifest = read_manifest(tiny_artifact)
    text = (tiny_artifact / BUILD_INFO).read_text()
    assert manifest.to_json() == text  # written through the same dataclass it is read with
    assert Manifest.from_dict(json.loads(text)) == manifest
    assert set(manifest.files) | {BUILD_INFO} == set(artifact_paths())
    assert manifest.indexes["vocab"].rows == manifest.configs["vocabulary"].rows
    for config in ("neurons", "word_groups"):  # format 3: one index per optimized config, named after it
        assert manifest.indexes[config].rows == manifest.configs[config].rows
        assert manifest.index_of(config) == (config, 0)


def _set(path: list, value):
    def change(info: dict) -> None:
        node = info
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return change


def _drop_file(rel: str):
    def change(info: dict) -> None:
        del info["files"][rel]
    return change


def _add_file(rel: str):
    def change(info: dict) -> None:
        info["files"][rel] = {"sha256": "0" * 64, "size": 1}
    return change


BAD_MANIFESTS = [
    ("no files", _set(["files"], {}), "'files' lists no files"),
    ("data file unlisted", _drop_file(NEURONS_FILE), f"{NEURONS_FILE} is not listed with a checksum"),
    ("index unlisted", _drop_file("index/vocab.faiss"), "index/vocab.faiss is not listed with a checksum"),
    ("absolute config path", _set(["configs", "neurons", "files"], ["/etc/passwd"]), "not a plain path"),
    ("config path outside", _set(["configs", "neurons", "files"], ["data/neurons/../../../secret.parquet"]),
     "not a plain path"),
    ("config path elsewhere", _set(["configs", "neurons", "files"], ["data/vocabulary/train-00000-of-00001.parquet"]),
     "not a parquet file under data/neurons/"),
    ("absolute file key", _add_file("/etc/passwd"), "not a plain path"),
    ("dot-dot file key", _add_file("../outside"), "not a plain path"),
    ("backslash file key", _add_file("data\\neurons\\x.parquet"), "invalid file path"),
    ("bad sha256", _set(["files", NEURONS_FILE, "sha256"], "xyz"), "64 lowercase hex"),
    ("negative size", _set(["files", NEURONS_FILE, "size"], -1), "is negative"),
    ("size as string", _set(["files", NEURONS_FILE, "size"], "12"), "wrong type"),
    ("rows as bool", _set(["configs", "neurons", "rows"], True), "wrong type"),
    ("missing config", lambda info: info["configs"].pop("vocabulary"), "must name exactly"),
    ("index rows", _set(["indexes", "vocab", "rows"], 5), "does not match the configs"),
    ("index dimension", _set(["indexes", "vocab", "dimension"], 7), "does not match the configs"),
    ("index kind", _set(["indexes", "vocab", "kind"], "IndexFlatL2"), "kind must be IndexFlatIP"),
    ("index path", _set(["indexes", "vocab", "path"], "index/other.faiss"), "path must be"),
    ("model size", _set(["model", "hidden_size"], 0), "must be positive"),
    ("model as list", _set(["model"], []), "wrong type"),
    ("old format", _set(["format_version"], 1), "format 1, written by ft-artifacts"),
    ("newer format", _set(["format_version"], 99), "format 99, written by ft-artifacts"),
    ("default config", _set(["default_config"], "nope"), "default_config"),
]


@pytest.mark.parametrize("label, change, needle", BAD_MANIFESTS, ids=[b[0] for b in BAD_MANIFESTS])
def test_a_malformed_manifest_is_one_clear_error(copied: Path, label: str, change, needle: str) -> None:
    edit_info(copied, change)
    with pytest.raises(ArtifactError, match=needle.replace("(", r"\(").replace("\\", "\\\\")) as err:
        ft_artifacts.load(copied, verify=False)
    assert "\n" not in str(err.value) and "build_info.json" in str(err.value), label


def test_the_writer_refuses_what_the_reader_would(copied: Path) -> None:
    manifest = read_manifest(copied)
    manifest.files = {}
    with pytest.raises(ArtifactError, match="lists no files"):
        write_manifest(copied, manifest)


# --- the loader reads exactly the listed files -----------------------------------------------------------------------

def test_an_extra_data_file_is_refused_by_name(copied: Path) -> None:
    extra = copied / "data/neurons/train-x.parquet"
    shutil.copy(copied / NEURONS_FILE, extra)
    with pytest.raises(ArtifactError, match="holds files its build_info.json does not list: "
                                            "data/neurons/train-x.parquet"):
        ft_artifacts.load(copied)
    (copied / "index/extra.faiss").write_bytes(b"x")
    extra.unlink()
    with pytest.raises(ArtifactError, match="index/extra.faiss"):
        ft_artifacts.load(copied)


def test_plain_load_dataset_reads_exactly_the_listed_rows(copied: Path) -> None:
    import datasets

    rows = len(datasets.load_dataset(str(copied), "neurons", split="train"))
    shutil.copy(copied / NEURONS_FILE, copied / "data/neurons/train-x.parquet")  # a stray copy beside it
    assert len(datasets.load_dataset(str(copied), "neurons", split="train")) == rows == \
        read_manifest(copied).configs["neurons"].rows


def test_files_outside_data_and_index_are_ignored(copied: Path) -> None:
    (copied / "notes.txt").write_text("mine")
    ft_artifacts.load(copied)  # not read, not published, not an error


# --- a build writes only its own files -----------------------------------------------------------------------------

def test_a_build_refuses_a_folder_holding_other_files(tiny_config, tmp_path: Path) -> None:
    from ft_artifacts.builders.build import build

    out = tmp_path / "out"
    (out / "private").mkdir(parents=True)
    (out / "private/id_rsa").write_text("secret")
    with pytest.raises(ArtifactError, match=r"holds files a build does not write \(private/id_rsa\)"):
        build(tiny_config, out)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["private", "private/id_rsa"]

    stray = tmp_path / "stray"
    (stray / "data/neurons").mkdir(parents=True)
    (stray / NEURONS_FILE).write_bytes(b"someone else's")
    with pytest.raises(ArtifactError, match="holds artifact files .* but no build of its own"):
        build(tiny_config, stray)
    assert (stray / NEURONS_FILE).read_bytes() == b"someone else's"


# --- push uploads exactly the manifest ------------------------------------------------------------------------------

def test_push_plan_is_exactly_the_manifest_and_refuses_symlinks(copied: Path, tmp_path: Path) -> None:
    from ft_artifacts.publish import plan_upload

    secret = tmp_path / "secret.txt"
    secret.write_text("do not publish")
    (copied / "private").mkdir()
    os.symlink(secret, copied / "private/key")  # not listed: ignored
    (copied / "notes.txt").write_text("not listed")
    plan = [item["path"] for item in plan_upload(copied)]
    assert plan == sorted(read_manifest(copied).files) + [BUILD_INFO]

    card = copied / "README.md"
    card.rename(tmp_path / "card.md")
    os.symlink(tmp_path / "card.md", card)  # a listed file that is a link: refused
    with pytest.raises(ArtifactError, match="README.md .* is a symbolic link"):
        plan_upload(copied)


def test_push_refuses_a_damaged_artifact(copied: Path) -> None:
    from ft_artifacts.publish import plan_upload

    data = bytearray((copied / NEURONS_FILE).read_bytes())
    data[100] ^= 0xFF
    (copied / NEURONS_FILE).write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=NEURONS_FILE):
        plan_upload(copied)
    (copied / NEURONS_FILE).unlink()
    with pytest.raises(ArtifactError, match=f"{NEURONS_FILE} is missing"):
        plan_upload(copied)


def test_push_needs_the_indexes_the_loader_could_rebuild(copied: Path) -> None:
    from ft_artifacts.publish import plan_upload

    (copied / "index/vocab.faiss").unlink()
    ft_artifacts.load(copied)  # reading rebuilds it on use ...
    with pytest.raises(ArtifactError, match="index/vocab.faiss is missing"):
        plan_upload(copied)  # ... publishing never sends an incomplete artifact


# --- files like any tool writes --------------------------------------------------------------------------------------

def test_artifact_files_respect_the_umask(tiny_bert, tmp_path: Path) -> None:
    from ft_artifacts.builders.build import build
    from ft_artifacts.settings import OptimConfig

    old = os.umask(0o022)
    try:
        out = build(tiny_build_config(tiny_bert, optim=OptimConfig(steps=2, trace_every=1)), tmp_path / "perm")
    finally:
        os.umask(old)
    modes = {p.relative_to(out).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*") if p.is_file()}
    assert modes and set(modes.values()) == {0o644}, modes
