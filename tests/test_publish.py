"""End-to-end tests of ft_artifacts.publish against the loopback test hub in tests/hubserver.py.

The client side (huggingface_hub, datasets) runs in subprocesses because huggingface_hub reads HF_ENDPOINT
at import time; the hub runs in this process so the tests can inspect what it stored.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import hubserver
from ft_artifacts.publish import plan_upload
from hubserver import hub_server  # noqa: F401 - pytest fixture

pytest_plugins = ["artifact_fixtures"]  # tiny_artifact, tiny_loaded: the real artifact built from a tiny BERT

REPO_ID = "user/artifact"
TOKEN = "hf_dummyTokenThatMustNeverLeak0123456789"
# Files beside an artifact that are not in its manifest: never published, never read.
STRAY = [".hidden", ".cache/blob.bin", "private/id_rsa", "README.md.tmp", "notes.txt"]

# Calls ft_artifacts.publish.<argv[1]>(*argv[2], **argv[3]) and prints {"result"} or {"error", "message"}.
CALL = """
import json, logging, sys
logging.basicConfig(level=logging.DEBUG)
from ft_artifacts import publish
from ft_artifacts.errors import FTError
try:
    out = {"result": getattr(publish, sys.argv[1])(*json.loads(sys.argv[2]), **json.loads(sys.argv[3]))}
except FTError as err:
    out = {"error": type(err).__name__, "message": str(err)}
print(json.dumps(out, default=str))
"""
# Plain `datasets` user: no ft_artifacts import.
LOAD = """
import json, sys
import datasets
rows = {name: datasets.load_dataset(sys.argv[1], name, split="train").to_dict() for name in sys.argv[2:]}
streamed = list(datasets.load_dataset(sys.argv[1], split="train", streaming=True))  # default config
rows["streamed"] = {key: [row[key] for row in streamed] for key in streamed[0]}
assert not any(m.startswith("ft_artifacts") for m in sys.modules)
print(json.dumps(rows))
"""


@pytest.fixture
def artifact(tiny_artifact: Path, tmp_path: Path) -> Path:
    """A copy of the real tiny artifact, plus stray files that must never be published."""
    root = Path(shutil.copytree(tiny_artifact, tmp_path / "artifact"))
    for rel in STRAY:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"not part of the artifact")
    return root


def rewrite_manifest(root: Path) -> None:
    """A new valid build_info.json (a changed setting), so the next push is a different commit."""
    from dataclasses import replace

    from ft_artifacts.manifest import read_manifest, write_manifest

    manifest = read_manifest(root)
    manifest.settings = replace(manifest.settings, scan_batch=manifest.settings.scan_batch + 1)
    write_manifest(root, manifest)


@pytest.fixture
def client(hub_server, tmp_path: Path):  # noqa: F811 - fixture injection
    """Runs client code in a subprocess pointed at the test hub; records all output for the token-leak check."""
    return HubClient(hub_server, tmp_path / "hf_home")


class HubClient:
    def __init__(self, hub, hf_home: Path):
        self.hub, self.hf_home, self.outputs = hub, hf_home, []
        self.cwd = hf_home.parent  # never the repo root: `ft_artifacts.builders` must come from the installed package
        hf_home.mkdir(parents=True, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
        self.env.update(
            HF_ENDPOINT=hub.endpoint, HF_TOKEN=TOKEN, HF_HOME=str(hf_home), HF_DATASETS_CACHE=str(hf_home / "datasets"),
            HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_UPDATE_CHECK="1",
        )

    def run(self, code: str, *args: str, env: dict | None = None) -> dict:
        proc = subprocess.run([sys.executable, "-c", code, *args], env={**self.env, **(env or {})}, cwd=self.cwd,
                              capture_output=True, text=True, timeout=180)
        self.outputs += [proc.stdout, proc.stderr]
        assert proc.returncode == 0, proc.stderr[-4000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def cli(self, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        """The installed `ft-artifacts` console script; must succeed."""
        proc = subprocess.run([str(Path(sys.executable).with_name("ft-artifacts")), *args],
                              env={**self.env, **(env or {})}, cwd=self.cwd, capture_output=True, text=True,
                              timeout=180)
        self.outputs += [proc.stdout, proc.stderr]
        assert proc.returncode == 0, proc.stderr[-4000:]
        return proc

    def call(self, function: str, *args, env: dict | None = None, **kwargs) -> dict:
        return self.run(CALL, function, json.dumps(args), json.dumps(kwargs), env=env)

    def push(self, folder: Path, **kwargs) -> dict:
        out = self.call("push_folder", str(folder), REPO_ID, **kwargs)
        assert "result" in out, out
        return out["result"]


def assert_token_never_leaked(client: HubClient, server_log: str) -> None:
    assert TOKEN not in server_log
    assert all(TOKEN not in text for text in client.outputs)
    for path in client.hf_home.rglob("*"):
        if path.is_file() and path.name != "token":  # huggingface_hub's own token file, if it ever wrote one
            assert TOKEN.encode() not in path.read_bytes(), path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_plan_upload_lists_exactly_the_manifest(artifact: Path) -> None:
    plan = plan_upload(artifact)
    paths = [item["path"] for item in plan]
    listed = json.loads((artifact / "build_info.json").read_text())["files"]
    assert paths == sorted(listed) + ["build_info.json"]  # the stray files are not in it
    for item in plan:
        data = (artifact / item["path"]).read_bytes()
        assert (item["size"], item["sha256"]) == (len(data), sha256(data))


def test_push_folder_uploads_planned_files_in_one_tagged_commit(client: HubClient, artifact: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger=hubserver.logger.name)
    result = client.push(artifact, tag="v1", commit_message="Publish test artifact")

    repo = client.hub.repos[REPO_ID]
    assert repo.repo_type == "dataset"
    assert len(repo.branches["main"]) == 1
    head = repo.head("main")
    assert (result["commit_oid"], head.title, repo.tags["v1"]) == (head.oid, "Publish test artifact", head)
    assert result["commit_url"].endswith(head.oid) and result["revision"] == "main"
    assert result["files"] == plan_upload(artifact)
    assert {p: sha256(b) for p, b in head.files.items()} == {f["path"]: f["sha256"] for f in result["files"]}
    assert client.hub.auth_seen and not client.hub.unknown
    assert_token_never_leaked(client, caplog.text)


def test_push_folder_to_branch_creates_branch_and_leaves_main(client: HubClient, artifact: Path) -> None:
    main_oid = client.push(artifact)["commit_oid"]
    rewrite_manifest(artifact)
    result = client.push(artifact, revision="v1-branch")

    repo = client.hub.repos[REPO_ID]
    assert result["revision"] == "v1-branch"
    assert [c.oid for c in repo.branches["v1-branch"]] == [main_oid, result["commit_oid"]]
    assert [c.oid for c in repo.branches["main"]] == [main_oid]
    assert repo.head("v1-branch").files["build_info.json"] == (artifact / "build_info.json").read_bytes()


def test_push_again_with_existing_tag_warns_instead_of_failing(client: HubClient, artifact: Path) -> None:
    first = client.push(artifact, tag="v1")
    rewrite_manifest(artifact)
    second = client.push(artifact, tag="v1")
    repo = client.hub.repos[REPO_ID]
    assert second["commit_oid"] != first["commit_oid"]
    assert repo.tags["v1"].oid == first["commit_oid"]
    assert "tag 'v1' already exists" in client.outputs[-1]


def older_build_files(repo: hubserver.Repo, paths: list[str]) -> None:
    """Files on main that an earlier push (an older build, or a person) left there."""
    ops = [{"key": "file", "value": {"path": p, "content": base64.b64encode(f"old {p}".encode()).decode()}}
           for p in paths]
    repo.commit("main", "older build", ops)


def test_push_leaves_the_branch_holding_exactly_the_artifact(client: HubClient, artifact: Path) -> None:
    client.push(artifact)
    repo = client.hub.repos[REPO_ID]
    stale = ["data/neurons/train-00000-of-00002.parquet", "figures/old.png", "index/old.faiss", "notes.txt"]
    older_build_files(repo, [".gitattributes", *stale])
    before = repo.head("main")
    rewrite_manifest(artifact)
    result = client.push(artifact)

    head = repo.head("main")
    assert result["removed"] == sorted(stale)
    assert sorted(head.files) == sorted([f["path"] for f in result["files"]] + [".gitattributes"])
    assert head.parent is before and all(path in before.files for path in stale)  # history keeps them
    assert {p: sha256(head.files[p]) for p in head.files if p != ".gitattributes"} == {
        f["path"]: f["sha256"] for f in result["files"]}
    assert client.push(artifact)["removed"] == []  # nothing left to remove
    older_build_files(repo, ["notes.txt"])
    printed = client.cli("push", str(artifact), "--repo-id", REPO_ID).stdout
    assert "removed 1 file that build_info.json does not list: notes.txt" in printed
    assert "notes.txt" not in repo.head("main").files


def test_a_push_racing_another_commit_fails_and_mixes_nothing(client: HubClient, artifact: Path) -> None:
    client.push(artifact)
    repo = client.hub.repos[REPO_ID]
    rewrite_manifest(artifact)

    def concurrent(target: hubserver.Repo, branch: str) -> None:
        client.hub.before_commit = None
        older_build_files(target, ["data/other.parquet"])

    client.hub.before_commit = concurrent
    out = client.call("push_folder", str(artifact), REPO_ID)
    assert out["error"] == "PublishError" and "changed while publishing" in out["message"], out
    assert "run the push again" in out["message"] and "\n" not in out["message"]
    head = repo.head("main")
    assert head.title == "older build" and head.files["build_info.json"] != (artifact / "build_info.json").read_bytes()
    retried = client.push(artifact)
    assert retried["removed"] == ["data/other.parquet"]


def test_datasets_load_dataset_reads_exactly_the_built_rows(client: HubClient, artifact: Path) -> None:
    client.push(artifact)
    rows = client.run(LOAD, REPO_ID, "neurons", "vocabulary")
    for config in ("neurons", "vocabulary", "streamed"):
        local = pq.read_table(artifact / f"data/{'neurons' if config == 'streamed' else config}/train-00000-of-00001.parquet")
        for column in ("neuron", "token"):
            if column in local.column_names:
                assert rows[config][column] == local.column(column).to_pylist(), config
    assert not client.hub.unknown


def test_download_artifact_returns_byte_identical_snapshot(client: HubClient, artifact: Path) -> None:
    client.hub.tree_page_size = 2  # force the client through tree pagination
    result = client.push(artifact, tag="v1")
    for revision in (None, "v1", result["commit_oid"]):
        snapshot = Path(client.call("download_artifact", REPO_ID, revision)["result"])
        got = sorted(p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file())
        assert got == sorted(f["path"] for f in result["files"])
        for rel in got:
            assert (snapshot / rel).read_bytes() == (artifact / rel).read_bytes()
    listed = {f["path"] for f in result["files"]}  # each file fetched by its own literal path, nothing else
    assert {p.rsplit("/resolve/", 1)[1].split("/", 1)[1] for _, p in client.hub.requests if "/resolve/" in p} \
        == listed
    assert not client.hub.unknown
    seen = len(client.hub.requests)
    offline = client.call("download_artifact", REPO_ID, "v1", env={"HF_HUB_OFFLINE": "1"})["result"]
    assert offline == str(snapshot) and len(client.hub.requests) == seen


UNREACHABLE = {"HF_ENDPOINT": "http://127.0.0.1:9"}


@pytest.mark.parametrize(
    ("push_first", "function", "args", "env", "error", "needle"),
    [
        (True, "download_artifact", [REPO_ID], {"HF_HUB_OFFLINE": "1"}, "ArtifactError", "HF_HUB_OFFLINE is set"),
        (False, "download_artifact", ["user/missing"], {}, "ArtifactError", "user/missing not found"),
        (True, "download_artifact", [REPO_ID, "no-such-branch"], {}, "ArtifactError", "revision 'no-such-branch'"),
        (False, "download_artifact", [REPO_ID], UNREACHABLE, "ArtifactError", "cannot reach the Hub"),
        (False, "push_folder", ["ARTIFACT", REPO_ID], {"HF_TOKEN": ""}, "PublishError", "run `hf auth login`"),
        (False, "push_folder", ["ARTIFACT", REPO_ID], UNREACHABLE, "PublishError", "cannot reach the Hub"),
    ],
    ids=["offline-uncached", "missing-repo", "missing-revision", "download-unreachable", "not-logged-in",
         "push-unreachable"],
)
def test_errors_are_one_clear_line(client: HubClient, artifact: Path, push_first, function, args, env, error,
                                   needle) -> None:
    if push_first:
        client.push(artifact)
    client.hub.require_auth = True
    out = client.call(function, *[str(artifact) if a == "ARTIFACT" else a for a in args], env=env)
    assert out.get("error") == error, out
    assert needle in out["message"] and "\n" not in out["message"]
    assert_token_never_leaked(client, "")


# --- the real artifact, end to end through the CLI -----------------------------------------------------------------

TINY_REPO = "org/ft-tiny"
# Plain `datasets` user of a published artifact: no ft_artifacts import.
LOAD_PUBLISHED = """
import hashlib, json, sys
import datasets
ds = datasets.load_dataset(sys.argv[1], sys.argv[2], split="train")
assert not any(m.startswith("ft_artifacts") for m in sys.modules)
print(json.dumps({"rows": ds.num_rows, "columns": list(ds.features),
                  "digest": hashlib.sha256(json.dumps(ds.to_list()).encode()).hexdigest()}))
"""
# ft-artifacts user: load by repo id (download + checksum verification), then query.
QUERY_PUBLISHED = """
import json, sys
import ft_artifacts
art = ft_artifacts.load(sys.argv[1])
queries = json.loads(sys.argv[2])
print(json.dumps({"path": str(art.path), "checksums": art.verify(),
                  "nearest_words": [art.nearest_words(k=10, **q) for q in queries],
                  "neurons_near": art.neurons_near(word="people", k=10)}))
"""


def test_cli_push_of_a_real_artifact_round_trips(client: HubClient, tiny_artifact: Path, tiny_loaded,
                                                 caplog) -> None:
    caplog.set_level(logging.DEBUG, logger=hubserver.logger.name)
    proc = client.cli("push", str(tiny_artifact), "--repo-id", TINY_REPO)

    repo = client.hub.repos[TINY_REPO]
    assert repo.repo_type == "dataset" and len(repo.branches["main"]) == 1
    head = repo.head("main")
    build_info = (tiny_artifact / "build_info.json").read_bytes()
    recorded = json.loads(build_info)["files"]
    assert {p: sha256(b) for p, b in head.files.items()} == {
        **{rel: f["sha256"] for rel, f in recorded.items()}, "build_info.json": sha256(build_info)}
    tag = "build-" + sha256(build_info)[:12]
    assert repo.tags == {tag: head}
    assert proc.stdout.splitlines() == [f"published {TINY_REPO}@main: {client.hub.endpoint}/datasets/{TINY_REPO}"
                                        f"/commit/{head.oid}"]

    out = client.run(LOAD_PUBLISHED, TINY_REPO, "neurons")
    local = pq.read_table(str(tiny_artifact / "data/neurons/train-00000-of-00001.parquet"))
    assert out == {"rows": local.num_rows, "columns": local.column_names,
                   "digest": sha256(json.dumps(local.to_pylist()).encode())}

    queries = [{"neuron": tiny_loaded.neurons[0]["neuron"]}, {"group": "people/relative/10"},
               {"group": ["time", "absolute", 450]}, {"word": "people"}]
    out = client.run(QUERY_PUBLISHED, TINY_REPO, json.dumps(queries))
    assert Path(out["path"]).is_relative_to(client.hf_home)  # a downloaded snapshot, not the local folder
    assert out["checksums"] == {rel: "ok" for rel in recorded}
    assert out["nearest_words"] == [tiny_loaded.nearest_words(k=10, **q) for q in queries]
    assert out["neurons_near"] == tiny_loaded.neurons_near(word="people", k=10)
    assert client.hub.auth_seen and not client.hub.unknown
    assert_token_never_leaked(client, caplog.text)


def test_cli_push_with_revision_lands_on_that_branch(client: HubClient, tiny_artifact: Path, tiny_loaded,
                                                     caplog) -> None:
    caplog.set_level(logging.DEBUG, logger=hubserver.logger.name)
    proc = client.cli("push", str(tiny_artifact), "--repo-id", TINY_REPO, "--revision", "somebranch")

    repo = client.hub.repos[TINY_REPO]
    assert repo.branches["main"] == []  # nothing on main
    (commit,) = repo.branches["somebranch"]
    assert {p: sha256(b) for p, b in commit.files.items()} == {
        f["path"]: f["sha256"] for f in plan_upload(tiny_artifact)}
    assert proc.stdout.startswith(f"published {TINY_REPO}@somebranch: ")
    # The CLI reads it back from that branch (by repo id and --revision).
    proc = client.cli("query", TINY_REPO, "--revision", "somebranch", "--group", "people", "--group-size", "10",
                      "--json")
    assert json.loads(proc.stdout) == [{"token": h["token"], "cosine": h["cosine"]}
                                       for h in tiny_loaded.nearest_words(group="people/relative/10")]
    assert not client.hub.unknown
    assert_token_never_leaked(client, caplog.text)


FORCE = """
import json, sys
import ft_artifacts
from ft_artifacts.errors import ChecksumError
art = ft_artifacts.load(sys.argv[1])
blob = (art.path / "data/neurons/train-00000-of-00001.parquet").resolve()  # the cache's blob behind the link
data = bytearray(blob.read_bytes()); data[100] ^= 0xFF; blob.write_bytes(bytes(data))
try:
    ft_artifacts.load(sys.argv[1]); first = "loaded"
except ChecksumError as err:
    first = str(err)
again = ft_artifacts.load(sys.argv[1], force_download=True)
print(json.dumps({"first": first, "again": again.verify(full=True)}))
"""


def test_force_download_replaces_a_corrupt_cached_snapshot(client: HubClient, artifact: Path) -> None:
    client.push(artifact)
    out = client.run(FORCE, REPO_ID)
    assert "does not match the sha256" in out["first"] and "force_download=True" in out["first"]
    assert set(out["again"].values()) == {"ok"}
