"""Nothing damaged is published, and every publish path runs end to end against the loopback Hub.

- `push` and `build --push` (on a finished folder) with a flipped byte or a missing file fail before any
  request reaches the Hub: the server counts every request it receives (`HubState.requests`).
- `ft_artifacts.load(repo_id)` of a downloaded snapshot whose file was corrupted raises the checksum error.
- Large files go through huggingface_hub's LFS path (batch, PUT, verify) and come back byte-exact;
  `--private` creates a private repo; a real `build --push` publishes what it built.

The client side runs in subprocesses (the installed console script, or a fresh interpreter), because
huggingface_hub reads HF_ENDPOINT at import time.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hubserver import hub_server  # noqa: F401 - pytest fixture

pytest_plugins = ["artifact_fixtures"]

CONSOLE_SCRIPT = Path(sys.executable).with_name("ft-artifacts")
TOKEN = "hf_dummyTokenThatMustNeverLeak0123456789"
REPO = "org/guarded"


def lfs_threshold(folder: Path) -> int:
    """Files larger than the card and build_info.json go through LFS (the parquet files and indexes)."""
    return max((folder / "README.md").stat().st_size, (folder / "build_info.json").stat().st_size) + 1


BUILD_STEPS = "5"  # the demo preset on the tiny BERT, few steps: seconds


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hub_env(hub, home: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_ENDPOINT=hub.endpoint, HF_TOKEN=TOKEN, HF_HOME=str(home), HF_HUB_DISABLE_XET="1",
               HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_UPDATE_CHECK="1", TOKENIZERS_PARALLELISM="false",
               **extra)
    return env


def run(args: list[str], hub, home: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=hub_env(hub, home), cwd=cwd, capture_output=True, text=True, timeout=300)


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)}


def build_args(model: Path, out: Path) -> list[str]:
    return ["build", "--preset", "demo", "--model", str(model), "--steps", BUILD_STEPS, "--out", str(out),
            "--device", "cpu"]


@pytest.fixture(scope="module")
def built(tiny_bert, tmp_path_factory) -> Path:
    """A finished `build --preset demo` folder of the tiny BERT (built without pushing)."""
    out = tmp_path_factory.mktemp("built") / "artifact"
    result = CliRunner().invoke(__import__("ft_artifacts.cli", fromlist=["main"]).main, build_args(tiny_bert, out))
    assert result.exit_code == 0, (result.output, result.exception)
    return out


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


DAMAGE = {
    "flipped-data-byte": ("data/neurons/train-00000-of-00001.parquet", flip_byte),
    "flipped-index-byte": ("index/word_groups.faiss", flip_byte),
    "flipped-card-byte": ("README.md", flip_byte),
    "missing-data-file": ("data/word_groups/train-00000-of-00001.parquet", Path.unlink),
    "missing-card": ("README.md", Path.unlink),
}


def damaged_copy(src: Path, dst: Path, case: str) -> tuple[Path, str]:
    shutil.copytree(src, dst)
    rel, damage = DAMAGE[case]
    damage(dst / rel)
    return dst, rel


def assert_refused(proc: subprocess.CompletedProcess, rel: str, hub) -> None:
    assert proc.returncode == 1, (proc.stdout, proc.stderr[-3000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and rel in lines[0], proc.stderr[-3000:]
    assert hub.requests == [], hub.requests  # not one request reached the Hub
    assert not hub.repos


@pytest.mark.parametrize("case", list(DAMAGE))
def test_push_of_a_damaged_artifact_sends_nothing(case, tiny_artifact, hub_server, tmp_path):  # noqa: F811
    folder, rel = damaged_copy(tiny_artifact, tmp_path / "artifact", case)
    proc = run([str(CONSOLE_SCRIPT), "push", str(folder), "--repo-id", REPO], hub_server, tmp_path / "home", tmp_path)
    assert_refused(proc, rel, hub_server)


@pytest.mark.parametrize("case", ["flipped-data-byte", "missing-data-file"])
def test_build_push_of_a_damaged_finished_folder_sends_nothing(case, built, tiny_bert, hub_server,  # noqa: F811
                                                               tmp_path):
    folder, rel = damaged_copy(built, tmp_path / "artifact", case)
    args = [str(CONSOLE_SCRIPT), *build_args(tiny_bert, folder), "--push", "--repo-id", REPO]
    proc = run(args, hub_server, tmp_path / "home", tmp_path)
    assert_refused(proc, rel, hub_server)


def test_push_of_an_artifact_missing_an_index_sends_nothing(tiny_artifact, hub_server, tmp_path):  # noqa: F811
    folder = tmp_path / "artifact"
    shutil.copytree(tiny_artifact, folder)
    (folder / "index/neurons.faiss").unlink()
    proc = run([str(CONSOLE_SCRIPT), "push", str(folder), "--repo-id", REPO], hub_server, tmp_path / "home", tmp_path)
    assert_refused(proc, "index/neurons.faiss", hub_server)


# Load by repo id (download, then verify), in a fresh interpreter pointed at the test hub.
LOAD = """
import json, sys
import ft_artifacts
from ft_artifacts.errors import FTError
try:
    art = ft_artifacts.load(sys.argv[1])
    print(json.dumps({"path": str(art.path), "checksums": art.verify()}))
except FTError as err:
    print(json.dumps({"error": type(err).__name__, "message": str(err)}))
"""


def load_in_child(hub, home: Path, cwd: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", LOAD, REPO], env=hub_env(hub, home), cwd=cwd, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_push_uses_lfs_for_large_files_and_round_trips_byte_exact(tiny_artifact, hub_server, tmp_path):  # noqa: F811
    hub_server.lfs_threshold = threshold = lfs_threshold(tiny_artifact)
    proc = run([str(CONSOLE_SCRIPT), "push", str(tiny_artifact), "--repo-id", REPO], hub_server, tmp_path / "home",
               tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    local = files_of(tiny_artifact)
    large = {rel for rel, data in local.items() if len(data) >= threshold}
    assert large and large != set(local)  # both paths run
    repo = hub_server.repos[REPO]
    head = repo.head("main")
    assert head.files == local
    assert set(head.lfs) == large
    # each large file went through batch -> PUT -> verify; the small ones inline in the commit
    want = sorted(sha256(local[rel]) for rel in large)
    assert sorted(hub_server.lfs_uploads) == sorted(hub_server.lfs_verified) == want
    assert sum(path.endswith(".git/info/lfs/objects/batch") for _, path in hub_server.requests) >= 1
    assert not hub_server.unknown
    assert not repo.private

    out = load_in_child(hub_server, tmp_path / "home", tmp_path)
    snapshot = Path(out["path"])
    assert snapshot.is_relative_to(tmp_path / "home")
    assert files_of(snapshot) == local
    assert set(out["checksums"].values()) == {"ok"}


def test_load_of_a_corrupted_snapshot_raises_the_checksum_error(tiny_artifact, hub_server, tmp_path):  # noqa: F811
    hub_server.lfs_threshold = lfs_threshold(tiny_artifact)
    proc = run([str(CONSOLE_SCRIPT), "push", str(tiny_artifact), "--repo-id", REPO], hub_server, tmp_path / "home",
               tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    snapshot = Path(load_in_child(hub_server, tmp_path / "home", tmp_path)["path"])
    rel = "data/vocabulary/train-00000-of-00001.parquet"
    flip_byte((snapshot / rel).resolve())  # the cached blob behind the snapshot's link
    out = load_in_child(hub_server, tmp_path / "home", tmp_path)
    assert out.get("error") == "ChecksumError", out
    assert rel in out["message"]


def test_private_flag_creates_a_private_repo(tiny_artifact, hub_server, tmp_path):  # noqa: F811
    for repo_id, extra in (("org/open", []), ("org/closed", ["--private"])):
        proc = run([str(CONSOLE_SCRIPT), "push", str(tiny_artifact), "--repo-id", repo_id, *extra], hub_server,
                   tmp_path / "home", tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert (hub_server.repos["org/open"].private, hub_server.repos["org/closed"].private) == (False, True)


def test_build_push_publishes_what_it_built(tiny_bert, built, hub_server, tmp_path):  # noqa: F811
    hub_server.lfs_threshold = lfs_threshold(built)
    out = tmp_path / "fresh"
    args = [str(CONSOLE_SCRIPT), *build_args(tiny_bert, out), "--push", "--repo-id", REPO, "--private"]
    proc = run(args, hub_server, tmp_path / "home", tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    repo = hub_server.repos[REPO]
    head = repo.head("main")
    local = files_of(out)
    assert head.files == local and repo.private and head.lfs
    assert repo.tags == {"build-" + sha256(local["build_info.json"])[:12]: head}
    assert proc.stdout.strip().splitlines()[-1].startswith(f"published {REPO}@main: ")
    # the same build as the one made without --push, row for row
    import pyarrow.parquet as pq

    for config in ("neurons", "word_groups"):
        rel = f"data/{config}/train-00000-of-00001.parquet"
        assert pq.read_table(out / rel).equals(pq.read_table(built / rel)), config
    assert not hub_server.unknown


def test_build_push_space_publishes_the_explorer_and_the_card_links_it(tiny_bert, hub_server, tmp_path):  # noqa: F811
    """`build --push --space`: the dataset and its explorer, each in its own repo; the card links the Space,
    the Space's README and site link the dataset."""
    out = tmp_path / "with-space"
    args = [str(CONSOLE_SCRIPT), *build_args(tiny_bert, out), "--push", "--repo-id", REPO, "--space", "org/guarded-explorer"]
    proc = run(args, hub_server, tmp_path / "home", tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "(https://huggingface.co/spaces/org/guarded-explorer)" in card
    assert hub_server.repos[REPO].head("main").files == files_of(out)  # the pushed card is the linking one
    space = hub_server.repos["org/guarded-explorer"].head("main").files
    assert "index.html" in space and f"https://huggingface.co/datasets/{REPO}" in space["README.md"].decode()
    assert f"https://huggingface.co/datasets/{REPO}".encode() in space["data/meta.js"]
    assert proc.stdout.strip().splitlines()[-1].startswith("published its explorer to the Space org/guarded-explorer")
    assert not hub_server.unknown


def test_build_space_id_is_checked_before_anything_runs(tiny_bert, hub_server, tmp_path):  # noqa: F811
    before = dict(hub_server.repos)
    proc = run([str(CONSOLE_SCRIPT), *build_args(tiny_bert, tmp_path / "x"), "--push", "--repo-id", REPO,
                "--space", "org/bad](javascript:alert(1))"], hub_server, tmp_path / "home", tmp_path)
    assert proc.returncode == 1 and "is not a Space id" in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "x").exists() and hub_server.repos == before
