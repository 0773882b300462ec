"""Publish an artifact folder to a Hugging Face dataset repo (one commit, optional tag) and download it back.

In: a local artifact folder and a ``repo_id``. Out: a commit on the Hub (described by a dict with its oid, URL
and the uploaded file list), or a local snapshot path for ``download_artifact``. Tokens come only from
huggingface_hub's usual sources (``HF_TOKEN``, ``hf auth login``) and are never logged or stored here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import ft_artifacts.hub as hub
from ft_artifacts.errors import ArtifactError, FTError, PublishError
from ft_artifacts.files import sha256_file

logger = logging.getLogger(__name__)

def plan_upload(folder: str | Path) -> list[dict]:
    """Exactly the files an artifact's build_info.json lists, plus build_info.json itself, verified
    (size and sha256, no symbolic links, nothing unlisted under data/ or index/):
    ``{"path", "size", "sha256"}`` in upload order. Raises ``ArtifactError`` naming the problem."""
    from .manifest import BUILD_INFO, check_files, read_manifest

    root = Path(folder)
    if not root.is_dir():
        raise ArtifactError(f"artifact folder not found: {root} (build the artifact first or fix the path)")
    manifest = read_manifest(root)
    check_files(root, manifest, full=True, for_upload=True)
    plan = [{"path": rel, "size": entry.size, "sha256": entry.sha256} for rel, entry in sorted(manifest.files.items())]
    info = root / BUILD_INFO
    plan.append({"path": BUILD_INFO, "size": info.stat().st_size, "sha256": sha256_file(info)})
    return plan


def _hub_error_message(err: Exception, repo_id: str, revision: str | None) -> str | None:
    """One-line, token-free explanation (problem + fix) of a huggingface_hub/httpx error, or None if unknown."""
    from huggingface_hub import errors as hf_errors

    where = f"{repo_id}@{revision}" if revision else repo_id
    status = getattr(getattr(err, "response", None), "status_code", None)
    if isinstance(err, hf_errors.OfflineModeIsEnabled):
        return f"cannot reach the Hub for {where}: HF_HUB_OFFLINE is set; unset it to go online"
    if isinstance(err, hf_errors.RevisionNotFoundError):
        return f"revision {revision!r} not found in dataset repo {repo_id}: check the branch/tag name"
    if isinstance(err, hf_errors.RepositoryNotFoundError) or status == 404:
        return (f"dataset repo {repo_id} not found, or private and you are not logged in: check the repo id, "
                "or run `hf auth login` / set HF_TOKEN")
    if status == 401:
        return f"not authenticated for dataset repo {repo_id}: run `hf auth login` or set HF_TOKEN"
    if status == 412:
        return f"{where} changed while publishing (another push?); nothing was committed: run the push again"
    if status == 403:
        return f"access to {repo_id} is forbidden for your token: use a token with access (write access to publish)"
    if isinstance(err, hf_errors.HFValidationError):
        return f"invalid repo id {repo_id!r}: expected 'namespace/name' with letters, digits, '-', '_' or '.'"
    if isinstance(err, hf_errors.HfHubHTTPError):
        return f"the Hub answered HTTP {status} for {where}: retry later or check https://status.huggingface.co"
    if _is_connection_error(err):
        kind = "did not answer in time" if "Timeout" in type(err).__name__ else "cannot be reached"
        return (f"cannot reach the Hub for {where}: the Hub at {hub.endpoint()} {kind}; check your network, proxy or "
                f"HF_ENDPOINT, or {hub.OFFLINE_HINT}")
    return None


def _is_connection_error(err: Exception) -> bool:
    """Network-level failure, whichever HTTP client this huggingface_hub uses (httpx2, httpx or requests)."""
    names = {"TransportError", "ConnectionError", "Timeout", "TimeoutException"}
    return isinstance(err, (ConnectionError, TimeoutError)) or any(c.__name__ in names for c in type(err).__mro__)


def _api(token: str | None):
    from huggingface_hub import HfApi

    return HfApi(token=token, library_name="ft-artifacts")


def _create_tag(api, repo_id: str, tag: str, commit_oid: str) -> None:
    from huggingface_hub.errors import HfHubHTTPError

    try:
        api.create_tag(repo_id, tag=tag, revision=commit_oid, repo_type="dataset")
    except HfHubHTTPError as err:
        if err.response is None or err.response.status_code != 409:
            raise
        logger.warning("tag %r already exists in %s; left unchanged (it does not point at %s)", tag, repo_id,
                       commit_oid[:12])


KEPT = frozenset({".gitattributes"})  # the Hub's own file in every repo: kept, never listed in a manifest


def _branch_files(api, repo_id: str, branch: str) -> tuple[str | None, list[str]]:
    """The branch's head commit and the files it holds; (None, []) for a branch with no commit yet."""
    from huggingface_hub.errors import RevisionNotFoundError

    try:
        info = api.dataset_info(repo_id, revision=branch)
    except RevisionNotFoundError:
        return None, []
    return info.sha, sorted(s.rfilename for s in info.siblings or [])


def verified_additions(root: Path, plan: list[dict]) -> list:
    """One commit operation per planned file, each read into memory once and checked against its planned
    sha256, so that what is uploaded is exactly what was verified, even if the file changes on disk meanwhile."""
    import hashlib

    from huggingface_hub import CommitOperationAdd

    operations = []
    for item in plan:
        data = (root / item["path"]).read_bytes()
        if hashlib.sha256(data).hexdigest() != item["sha256"]:
            raise ArtifactError(f"{item['path']} changed while publishing; nothing was committed, try again")
        operations.append(CommitOperationAdd(path_in_repo=item["path"], path_or_fileobj=data))
    return operations


def _commit_folder(api, root: Path, repo_id: str, plan: list[dict], revision: str, message: str):
    """Upload every planned file in a single commit (create_commit never splits, unlike xet's upload_folder),
    and delete in the same commit every file on the branch that the plan does not list (an older build's
    data, indexes or figures), so the branch then holds exactly this artifact. The commit names the head it
    was planned against, so a push racing another one fails instead of mixing two artifacts.
    Each file is read into memory once and checked against its planned sha256, so what is uploaded is
    exactly what was verified, even if the file changes on disk meanwhile. Returns (commit info, removed paths)."""
    from huggingface_hub import CommitOperationDelete

    operations = verified_additions(root, plan)
    head, present = _branch_files(api, repo_id, revision)
    listed = {item["path"] for item in plan}
    removed = [path for path in present if path not in listed and path not in KEPT]
    operations += [CommitOperationDelete(path_in_repo=path) for path in removed]
    info = api.create_commit(repo_id, operations, commit_message=message, repo_type="dataset", revision=revision,
                             parent_commit=head)
    return info, removed


def push_folder(folder: str | Path, repo_id: str, *, private: bool = False, revision: str | None = None,
                commit_message: str | None = None, tag: str | None = None, token: str | None = None,
                plan: list[dict] | None = None) -> dict:
    """Publish ``folder`` to dataset repo ``repo_id`` in ONE commit, optionally on a branch and tagged.

    Uploads exactly what ``plan_upload`` lists, verified first; nothing reaches the Hub before that check.
    Files already on the branch that the plan does not list are deleted in the same commit (``.gitattributes``
    stays), so the branch holds exactly this artifact; earlier commits keep them.
    Returns ``{"repo_id", "revision", "commit_oid", "commit_url", "files", "removed"}`` where ``files`` is
    ``plan_upload`` and ``removed`` the deleted paths.
    If nothing changed since the branch head, no commit is made and the head commit is returned.
    Raises ``PublishError`` with a one-line fix for auth, permission, not-found and connection problems.
    """
    root = Path(folder)
    plan = plan if plan is not None else plan_upload(root)
    branch = revision or "main"
    hub.probe(repo_id, PublishError)
    try:
        with hub.bounded(f"pushing to {repo_id}", PublishError):
            repo_id, info, removed = _push(root, repo_id, private, branch, commit_message, tag, token, plan)
    except FTError:
        raise
    except Exception as err:  # noqa: BLE001 - translated below or re-raised untouched
        message = _hub_error_message(err, repo_id, branch)
        if message is None:
            raise
        raise PublishError(message) from err
    logger.info("published %d files to %s@%s (commit %s), removed %d unlisted", len(plan), repo_id, branch,
                info.oid[:12], len(removed))
    return {"repo_id": repo_id, "revision": branch, "commit_oid": info.oid, "commit_url": info.commit_url,
            "files": plan, "removed": removed}


def _push(root: Path, repo_id: str, private: bool, branch: str, commit_message, tag, token, plan):
    """The push's Hub calls: (repo id as the Hub names it, commit info, removed paths)."""
    api = _api(token)
    repo_id = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True).repo_id
    if branch != "main":
        api.create_branch(repo_id, branch=branch, repo_type="dataset", exist_ok=True)
    info, removed = _commit_folder(api, root, repo_id, plan, branch, commit_message or f"Publish {root.name}")
    if tag:
        _create_tag(api, repo_id, tag, info.oid)
    return repo_id, info, removed


def download_artifact(repo_id: str, revision: str | None = None, cache_dir: str | Path | None = None,
                      force_download: bool = False) -> Path:
    """Download (or reuse from cache) a published artifact; returns the local snapshot folder.

    build_info.json comes first; then exactly the files it lists, from the same commit, and nothing
    else in the repo. ``force_download`` fetches every file again (a corrupt cached copy is replaced).
    Honours ``HF_HUB_OFFLINE``: offline, only a cached snapshot is returned. Raises ``ArtifactError`` with a
    one-line fix when the repo or revision does not exist, the Hub is unreachable, or (offline) nothing is cached.
    """
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        hub.probe(repo_id)
    except ArtifactError as unreachable:
        try:  # a cached copy still works without the Hub
            path = _fetch(repo_id, revision, cache_dir, False, local_only=True)
        except (LocalEntryNotFoundError, ArtifactError):
            raise unreachable from None
        logger.warning("%s; using the cached copy of %s", unreachable, repo_id)
        return path
    try:
        with hub.bounded(f"downloading {repo_id}"):
            path = _fetch(repo_id, revision, cache_dir, force_download)
    except LocalEntryNotFoundError as err:
        raise ArtifactError(_not_cached_message(repo_id, revision)) from err
    except FTError:
        raise
    except Exception as err:  # noqa: BLE001 - translated below or re-raised untouched
        message = _hub_error_message(err, repo_id, revision)
        if message is None:
            raise
        raise ArtifactError(message) from err
    logger.info("artifact %s@%s available at %s", repo_id, revision or "main", path)
    return Path(path)


def _fetch(repo_id: str, revision: str | None, cache_dir, force_download: bool, local_only: bool = False) -> Path:
    """build_info.json, then each file it lists, one by one by its literal path (never as a pattern),
    all from the commit build_info.json came from. Returns the snapshot folder."""
    from huggingface_hub import hf_hub_download

    from .manifest import BUILD_INFO, read_manifest

    def fetch(path: str, at: str | None) -> Path:
        return Path(hf_hub_download(repo_id, path, repo_type="dataset", revision=at, cache_dir=cache_dir,
                                    force_download=force_download, local_files_only=local_only))

    snapshot = fetch(BUILD_INFO, revision).parent
    manifest = read_manifest(snapshot)
    commit = snapshot.name  # the cache's snapshot folders are named by commit hash
    for path in sorted(manifest.files):
        got = fetch(path, commit)
        if got != snapshot / path:
            raise ArtifactError(f"{repo_id}: {path!r} was stored as {got.relative_to(snapshot.parent)}, not under "
                                "its listed path; the repo's build_info.json is not one this package wrote")
    return snapshot


def _not_cached_message(repo_id: str, revision: str | None) -> str:
    from huggingface_hub import constants

    where = f"{repo_id}@{revision or 'main'}"
    if constants.HF_HUB_OFFLINE:
        return f"{where} is not in the local cache and HF_HUB_OFFLINE is set: unset HF_HUB_OFFLINE to download it"
    return f"cannot reach the Hub and {where} is not in the local cache: check your network, proxy or HF_ENDPOINT"
