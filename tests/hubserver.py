"""Loopback fake of the Hugging Face Hub: HTTP requests from huggingface_hub/datasets in, in-memory repos out.

Speaks the subset of the Hub API used to create repos/branches/tags, commit files and download them again
(repo info, tree, resolve). By default every file is answered "regular" at preupload (base64 in the commit).
With ``HubState.lfs_threshold`` set, files of at least that many bytes are answered "lfs", and the git-LFS
batch, upload (single PUT) and verify endpoints are served, as huggingface_hub's LFS path uses them (clients
must set ``HF_HUB_DISABLE_XET=1``: Xet is not served). Every request is counted in ``HubState.requests``.
Unknown requests are logged and answered 404 with a JSON error.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import json
import logging
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

logger = logging.getLogger(__name__)

TYPE_PREFIXES = {"datasets": "dataset", "models": "model", "spaces": "space"}


def git_blob_oid(data: bytes) -> str:
    """The git blob sha1 of ``data``, which the Hub uses as ETag and oid of regular files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubError(Exception):
    """An HTTP error answer: status, Hub ``X-Error-Code`` and message."""

    def __init__(self, status: int, message: str, code: str | None = None, commit: str | None = None,
                 extra: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.commit, self.extra = status, code, commit, extra or {}


@dataclass
class Commit:
    oid: str
    title: str
    files: dict[str, bytes]
    parent: "Commit | None" = None
    lfs: frozenset = frozenset()  # paths stored as LFS objects
    date: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z"))

    def history(self) -> Iterator["Commit"]:
        commit: Commit | None = self
        while commit is not None:
            yield commit
            commit = commit.parent


@dataclass
class Repo:
    repo_id: str
    repo_type: str
    private: bool = False
    branches: dict[str, list[Commit]] = field(default_factory=lambda: {"main": []})
    tags: dict[str, Commit] = field(default_factory=dict)
    sdk: str | None = None  # a Space's SDK, as create_repo(space_sdk=...) sent it

    def head(self, branch: str = "main") -> Commit | None:
        commits = self.branches.get(branch) or [None]
        return commits[-1]

    def all_commits(self) -> Iterator[Commit]:
        yield from (c for commits in self.branches.values() for c in commits)
        yield from self.tags.values()

    def resolve(self, rev: str) -> Commit:
        if rev in self.branches and self.branches[rev]:
            return self.branches[rev][-1]
        if rev in self.tags:
            return self.tags[rev]
        if re.fullmatch(r"[0-9a-f]{7,40}", rev):
            for commit in self.all_commits():
                if commit.oid.startswith(rev):
                    return commit
        raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")

    def commit(self, branch: str, title: str, ops: list[dict], lfs_objects: dict[str, bytes] | None = None) -> Commit:
        if branch not in self.branches:
            raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
        parent = self.head(branch)
        files = dict(parent.files) if parent else {}
        lfs = set(parent.lfs) if parent else set()
        for op in ops:
            apply_operation(files, op, lfs_objects or {})
            if op["key"] == "lfsFile":
                lfs.add(op["value"]["path"])
            elif op["key"] == "file":
                lfs.discard(op["value"]["path"])
        lfs &= set(files)
        commit = Commit(hashlib.sha1(uuid.uuid4().bytes).hexdigest(), title, files, parent, frozenset(lfs))
        self.branches[branch].append(commit)
        return commit


def apply_operation(files: dict[str, bytes], op: dict, lfs_objects: dict[str, bytes]) -> None:
    key, value = op["key"], op["value"]
    if key == "file":
        files[value["path"]] = base64.b64decode(value["content"])
    elif key == "lfsFile":
        data = lfs_objects.get(value["oid"])
        if data is None or len(data) != value["size"]:
            raise HubError(400, f"LFS object {value['oid']} of {value['path']} was never uploaded")
        files[value["path"]] = data
    elif key == "deletedFile":
        files.pop(value["path"], None)
    elif key == "deletedFolder":
        prefix = value["path"].rstrip("/") + "/"
        for path in [p for p in files if p.startswith(prefix)]:
            del files[path]
    else:
        raise HubError(400, f"commit operation {key!r} is not supported by the test hub (no Xet)")


def tree_entries(commit: Commit, path: str, recursive: bool) -> list[dict]:
    """Files and folders under ``path`` (direct children, or all descendants when ``recursive``)."""
    prefix = path.strip("/") + "/" if path.strip("/") else ""
    entries: dict[str, dict] = {}
    for file_path in sorted(commit.files):
        if not file_path.startswith(prefix):
            continue
        parts = file_path[len(prefix):].split("/")
        depth = len(parts) if recursive else 1
        for i in range(1, min(depth, len(parts) - 1) + 1):
            folder = prefix + "/".join(parts[:i])
            entries.setdefault(folder, folder_entry(commit, folder))
        if recursive or len(parts) == 1:
            entries[file_path] = file_entry(commit, file_path)
    return list(entries.values())


def file_entry(commit: Commit, path: str) -> dict:
    data = commit.files[path]
    entry = {"type": "file", "oid": git_blob_oid(data), "size": len(data), "path": path}
    if path in commit.lfs:
        entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
    return entry


def folder_entry(commit: Commit, path: str) -> dict:
    listing = sorted((p, git_blob_oid(b)) for p, b in commit.files.items() if p.startswith(path + "/"))
    return {"type": "directory", "oid": hashlib.sha1(json.dumps(listing).encode()).hexdigest(), "size": 0, "path": path}


class HubState:
    """All repos of one server, guarded by one lock.

    ``auth_seen``: some request carried an Authorization header (any token is accepted; it is never stored).
    ``require_auth``: answer 401 to requests without one. ``tree_page_size``: entries per tree page.
    ``requests``: (method, path) of every request received, in order (its length counts them).
    ``lfs_threshold``: files of at least this size are answered "lfs" at preupload (None: all regular).
    ``lfs_objects``: uploaded LFS objects by sha256; ``lfs_uploads``/``lfs_verified``: oids, in order.
    ``before_commit``: called with the repo and branch as a commit request arrives, before its parent is
    checked (a test makes a concurrent commit there).
    """

    def __init__(self, endpoint: str = ""):
        self.endpoint = endpoint
        self.repos: dict[str, Repo] = {}
        self.lock = threading.RLock()
        self.auth_seen = False
        self.requests: list[tuple[str, str]] = []
        self.unknown: list[tuple[str, str]] = []
        self.tree_page_size = 1000
        self.require_auth = False
        self.lfs_threshold: int | None = None
        self.lfs_objects: dict[str, bytes] = {}
        self.lfs_uploads: list[str] = []
        self.lfs_verified: list[str] = []
        self.before_commit = None

    def repo(self, repo_type: str, repo_id: str) -> Repo:
        repo = self.repos.get(repo_id)
        if repo is None or repo.repo_type != repo_type:
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def repo_url(self, repo: Repo) -> str:
        prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
        return f"{self.endpoint}/{prefix}{repo.repo_id}"

    def repo_info(self, repo: Repo, rev: str | None) -> dict:
        commit = repo.resolve(rev) if rev else repo.head()
        files = commit.files if commit else {}
        siblings = [{"rfilename": p, "size": len(b), "blobId": git_blob_oid(b)} for p, b in sorted(files.items())]
        return {"id": repo.repo_id, "author": repo.repo_id.split("/")[0], "sha": commit.oid if commit else None,
                "private": repo.private, "gated": False, "disabled": False, "tags": [], "siblings": siblings,
                "lastModified": commit.date if commit else None}


class HubHandler(BaseHTTPRequestHandler):
    """Reads one request and answers it through ``route``; ``server.state`` is the shared ``HubState``."""

    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        logger.debug("hub %s", format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # CRLF after each chunk
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _dispatch(self, method: str) -> None:
        state = self.server.state
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        self.body = self._read_body()
        with state.lock:
            state.auth_seen |= bool(self.headers.get("Authorization"))
            state.requests.append((method, url.path))
        segments = [unquote(s) for s in url.path.split("/")[1:]]
        try:
            if state.require_auth and not self.headers.get("Authorization"):
                raise HubError(401, "Invalid username or password.")
            with state.lock:
                routed = route(self, state, method, segments)
            if not routed:
                with state.lock:
                    state.unknown.append((method, url.path))
                logger.warning("test hub: unhandled request %s %s", method, url.path)
                raise HubError(404, f"test hub does not implement {method} {url.path}")
        except HubError as err:
            self.send_json({"error": str(err), **err.extra}, err.status, error=err)

    def send_json(self, payload, status: int = 200, headers: dict | None = None, error: HubError | None = None) -> None:
        extra = dict(headers or {})
        if error is not None:
            extra["X-Error-Message"] = str(error)
            if error.code:
                extra["X-Error-Code"] = error.code
            if error.commit:
                extra["X-Repo-Commit"] = error.commit
        self.send_bytes(json.dumps(payload).encode(), status, {"Content-Type": "application/json", **extra})

    def send_bytes(self, body: bytes, status: int = 200, headers: dict | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def json_body(self) -> dict:
        return json.loads(self.body or b"{}")


def route(h: HubHandler, state: HubState, method: str, seg: list[str]) -> bool:
    """Answer the request if it is one the test hub knows; return False otherwise."""
    if method == "POST" and seg == ["api", "repos", "create"]:
        return create_repo(h, state)
    if method == "POST" and seg == ["api", "validate-yaml"]:
        h.send_json({"errors": [], "warnings": []})
        return True
    if method == "GET" and seg == ["api", "agent-harnesses"]:  # huggingface_hub's user-agent agent detection
        h.send_json({"standardEnvVars": [], "harnesses": {}})
        return True
    if len(seg) >= 4 and seg[0] == "api" and seg[1] in TYPE_PREFIXES:
        repo = state.repo(TYPE_PREFIXES[seg[1]], f"{seg[2]}/{seg[3]}")
        return api_route(h, state, repo, method, seg[4:])
    if method == "PUT" and len(seg) == 2 and seg[0] == "lfs-upload":
        return lfs_put(h, state, seg[1])
    if method == "POST" and seg == ["lfs-verify"]:
        return lfs_verify(h, state)
    if seg and seg[0] in TYPE_PREFIXES:
        repo_type, seg = TYPE_PREFIXES[seg[0]], seg[1:]
    else:
        repo_type = "model"
    if method == "POST" and len(seg) == 6 and seg[1].endswith(".git") and seg[2:] == ["info", "lfs", "objects", "batch"]:
        return lfs_batch(h, state, state.repo(repo_type, f"{seg[0]}/{seg[1][:-4]}"))
    if method in ("GET", "HEAD") and len(seg) >= 5 and seg[2] == "resolve":
        return resolve_file(h, state.repo(repo_type, f"{seg[0]}/{seg[1]}"), seg[3], "/".join(seg[4:]))
    return False


def api_route(h: HubHandler, state: HubState, repo: Repo, method: str, rest: list[str]) -> bool:
    action = rest[0] if rest else None
    rev = rest[1] if len(rest) > 1 else None
    path = "/".join(rest[2:])
    handlers = {
        ("GET", None): lambda: h.send_json(state.repo_info(repo, None)),
        ("GET", "revision"): lambda: h.send_json(state.repo_info(repo, rev)),
        ("GET", "tree"): lambda: list_tree(h, state, repo, rev, path),
        ("POST", "preupload"): lambda: preupload(h, state, repo, rev),
        ("POST", "commit"): lambda: commit(h, state, repo, rev),
        ("POST", "branch"): lambda: create_branch(h, repo, rev),
        ("POST", "tag"): lambda: create_tag(h, repo, rev),
    }
    handler = handlers.get((method, action))
    if handler is None or (action is not None and rev is None):
        return False
    handler()
    return True


def create_repo(h: HubHandler, state: HubState) -> bool:
    payload = h.json_body()
    repo_id = f"{payload.get('organization') or 'user'}/{payload['name']}"
    repo_type = payload.get("type") or "model"
    if repo_id in state.repos:  # the Hub still answers the repo URL, which create_repo(exist_ok=True) reads
        raise HubError(409, "You already created this repo", extra={"url": state.repo_url(state.repos[repo_id])})
    private = payload.get("visibility") == "private" or bool(payload.get("private"))
    state.repos[repo_id] = repo = Repo(repo_id, repo_type, private)
    repo.sdk = payload.get("sdk")
    h.send_json({"url": state.repo_url(repo), "name": repo_id})
    return True


def list_tree(h: HubHandler, state: HubState, repo: Repo, rev: str, path: str) -> None:
    commit = repo.resolve(rev)
    recursive = h.query.get("recursive", ["false"])[0].lower() in ("1", "true")
    if path and path not in commit.files and not any(p.startswith(path + "/") for p in commit.files):
        raise HubError(404, f"Entry not found: {path}", "EntryNotFound", commit.oid)
    entries = tree_entries(commit, path, recursive)
    start = int(h.query.get("cursor", ["0"])[0])
    page = entries[start:start + state.tree_page_size]
    headers = {}
    if start + state.tree_page_size < len(entries):
        query = f"recursive={str(recursive).lower()}&cursor={start + state.tree_page_size}"
        headers["Link"] = f'<{state.endpoint}{urlsplit(h.path).path}?{query}>; rel="next"'
    h.send_json(page, headers=headers)


def preupload(h: HubHandler, state: HubState, repo: Repo, rev: str) -> None:
    head = repo.head(rev) if rev in repo.branches else repo.resolve(rev)
    files = []
    for item in h.json_body().get("files", []):
        existing = head.files.get(item["path"]) if head else None
        lfs = state.lfs_threshold is not None and item["size"] >= state.lfs_threshold
        files.append({"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                      "oid": git_blob_oid(existing) if existing is not None else None})
    h.send_json({"files": files, "commitOid": head.oid if head else None})


def commit(h: HubHandler, state: HubState, repo: Repo, rev: str) -> None:
    if h.query.get("create_pr"):
        raise HubError(400, "the test hub does not support pull requests")
    lines = [json.loads(line) for line in h.body.decode().splitlines() if line.strip()]
    header = next((line["value"] for line in lines if line["key"] == "header"), {})
    parent = header.get("parentCommit")
    if state.before_commit is not None:
        state.before_commit(repo, rev)
    head = repo.head(rev)
    if parent and (head is None or not head.oid.startswith(parent)):
        raise HubError(412, "A commit has happened since. Please refresh and try again.")
    new = repo.commit(rev, header.get("summary", ""), [line for line in lines if line["key"] != "header"],
                      state.lfs_objects)
    h.send_json({"commitUrl": f"{state.repo_url(repo)}/commit/{new.oid}", "commitOid": new.oid, "success": True})


def lfs_batch(h: HubHandler, state: HubState, repo: Repo) -> bool:
    """git-LFS batch API, upload operation, basic transfer: one PUT per object, then a verify POST."""
    payload = h.json_body()
    if payload.get("operation") != "upload" or "basic" not in payload.get("transfers", ["basic"]):
        raise HubError(400, "the test hub serves LFS uploads with the basic transfer only")
    objects = []
    for obj in payload["objects"]:
        entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
        if obj["oid"] not in state.lfs_objects:
            entry["actions"] = {"upload": {"href": f"{state.endpoint}/lfs-upload/{obj['oid']}", "header": {}},
                                "verify": {"href": f"{state.endpoint}/lfs-verify", "header": {}}}
        objects.append(entry)
    h.send_json({"transfer": "basic", "objects": objects}, headers={"Content-Type": "application/vnd.git-lfs+json"})
    return True


def lfs_put(h: HubHandler, state: HubState, oid: str) -> bool:
    if hashlib.sha256(h.body).hexdigest() != oid:
        raise HubError(400, f"LFS upload for {oid}: content hash mismatch")
    state.lfs_objects[oid] = h.body
    state.lfs_uploads.append(oid)
    h.send_bytes(b"", 200)
    return True


def lfs_verify(h: HubHandler, state: HubState) -> bool:
    payload = h.json_body()
    data = state.lfs_objects.get(payload.get("oid"))
    if data is None or len(data) != payload.get("size"):
        raise HubError(404, f"LFS object {payload.get('oid')} not found")
    state.lfs_verified.append(payload["oid"])
    h.send_json({"success": True})
    return True


def create_branch(h: HubHandler, repo: Repo, branch: str) -> None:
    if branch in repo.branches:
        raise HubError(409, f"Reference already exists: refs/heads/{branch}")
    start = h.json_body().get("startingPoint")
    origin = repo.resolve(start) if start else repo.head()
    repo.branches[branch] = list(reversed(list(origin.history()))) if origin else []
    h.send_json({})


def create_tag(h: HubHandler, repo: Repo, rev: str) -> None:
    tag = h.json_body()["tag"]
    if tag in repo.tags:
        raise HubError(409, f"Tag {tag} already exists")
    repo.tags[tag] = repo.resolve(rev)
    h.send_json({"name": tag, "ref": f"refs/tags/{tag}"})


def resolve_file(h: HubHandler, repo: Repo, rev: str, path: str) -> bool:
    commit = repo.resolve(rev)
    if path not in commit.files:
        raise HubError(404, f"Entry not found: {path}", "EntryNotFound", commit.oid)
    data = commit.files[path]
    headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{git_blob_oid(data)}"', "Accept-Ranges": "bytes",
               "Content-Type": "application/octet-stream"}
    if path in commit.lfs:  # the Hub names LFS files by their sha256
        sha = hashlib.sha256(data).hexdigest()
        headers.update({"ETag": f'"{sha}"', "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(data))})
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", h.headers.get("Range") or "")
    if match and data:
        first = int(match[1]) if match[1] else max(len(data) - int(match[2] or 0), 0)
        last = min(int(match[2]), len(data) - 1) if match[1] and match[2] else len(data) - 1
        headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
        h.send_bytes(data[first:last + 1], 206, headers)
    else:
        h.send_bytes(data, 200, headers)
    return True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: HubState


@contextlib.contextmanager
def run_hub_server() -> Iterator[HubState]:
    """Serve a fresh, empty test hub on 127.0.0.1 (random port); yields its ``HubState``
    (``.endpoint``, ``.repos``, ``.auth_seen``, ``.unknown``, ``.requests``, ``.lfs_threshold``, ...)."""
    server = _Server(("127.0.0.1", 0), HubHandler)
    server.state = HubState(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, name="test-hub", daemon=True)
    thread.start()
    try:
        yield server.state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def hub_server() -> Iterator[HubState]:
    """A running loopback test hub for one test."""
    with run_hub_server() as state:
        yield state
