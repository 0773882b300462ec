"""Paths in, safe writes and checksums out: atomic replace-on-success, streaming sha256, and a cache
of verified files (size, mtime, ctime, inode) so unchanged files are not hashed again."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .safejson import loads

logger = logging.getLogger(__name__)

TMP_SUFFIX = ".tmp"


@contextmanager
def atomic_path(path: str | os.PathLike, tmp_dir: str | os.PathLike | None = None) -> Iterator[Path]:
    """Yield a temporary path; rename it to `path` only if the block succeeds.

    The temporary file lives in `tmp_dir` (same filesystem) or beside `path`, and is created with
    mode 0666 minus the umask, like any file a tool writes (0644 under umask 022)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tmp_dir) if tmp_dir is not None else path.parent
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{path.name}.{secrets.token_hex(4)}{TMP_SUFFIX}"
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_handle(handle, chunk: int = 1 << 20) -> str:
    """The sha256 of an open file's whole content, by positioned reads (its position is left as it was)."""
    digest, offset = hashlib.sha256(), 0
    while block := os.pread(handle.fileno(), chunk, offset):
        digest.update(block)
        offset += len(block)
    return digest.hexdigest()


def _cache_path() -> Path:
    root = os.environ.get("FT_ARTIFACTS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ft-artifacts")
    return Path(root) / "verified.json"


def _stamp(stat: os.stat_result) -> list[int]:
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev]


class VerifiedFiles:
    """Which files were last hashed to which sha256, keyed by real path and stat stamp (as git's index).

    A file whose size, mtime, ctime, inode and device are unchanged since it last hashed to the
    expected sha256 is taken as verified without reading it. The cache is a JSON file in the user's
    cache folder; it is advisory: unreadable or unwritable, everything is simply hashed."""

    def __init__(self, path: Path | None = None):
        self.path = path or _cache_path()
        self._entries: dict[str, list] | None = None
        self._dirty = False

    def _load(self) -> dict[str, list]:
        if self._entries is None:
            try:
                data = loads(self.path.read_bytes(), max_bytes=64 << 20, max_depth=4)
                self._entries = data if isinstance(data, dict) else {}
            except (OSError, ValueError):
                self._entries = {}
        return self._entries

    def matches(self, path: Path, sha256: str, *, full: bool = False) -> bool:
        """True when `path` has content `sha256`: from the cache when its stamp is unchanged and
        `full` is false, otherwise by hashing it (and remembering the result)."""
        real = os.path.realpath(path)
        return self._check(real, os.stat(real), sha256, full, lambda: sha256_file(real))

    def matches_handle(self, handle, path: Path, sha256: str, *, full: bool = False) -> bool:
        """As `matches`, for a file already open: its stamp is the open file's, and it is hashed from
        `handle` itself (positioned reads), so what was checked is what a later read of `handle` gets."""
        return self._check(os.path.realpath(path), os.fstat(handle.fileno()), sha256, full,
                           lambda: sha256_handle(handle))

    def _check(self, real: str, stat: os.stat_result, sha256: str, full: bool, digest) -> bool:
        """The cached answer for an unchanged stamp (unless `full`), else `digest()` compared and remembered."""
        entries = self._load()
        if not full and entries.get(real) == [sha256, *_stamp(stat)]:
            return True
        ok = digest() == sha256
        if ok:
            entries[real] = [sha256, *_stamp(stat)]
        else:
            entries.pop(real, None)
        self._dirty = True
        return ok

    def save(self) -> None:
        """Write the cache back, forgetting files that no longer exist (deleted artifacts, old snapshots)."""
        if not self._dirty:
            return
        self._entries = {path: entry for path, entry in self._load().items() if os.path.exists(path)}
        try:
            with atomic_path(self.path) as tmp:
                tmp.write_text(json.dumps(self._entries), encoding="utf-8")
            self._dirty = False
        except OSError as exc:
            logger.info("could not record verified files in %s (%s)", self.path, exc)


def folder_problem(path: str | os.PathLike) -> str | None:
    """Why `path` cannot be (or become) a folder this process writes into, in a few words naming the
    path; None when it can. Checked before any slow work (a model load, an artifact download): a file
    where the folder should be, a path under a file, a parent folder that is not writable."""
    path = Path(path).expanduser()
    if path.exists():
        if not path.is_dir():
            return f"{path} is a file, not a folder"
        return None if os.access(path, os.W_OK | os.X_OK) else f"{path}: the folder is not writable"
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{path}: {parent} is a file, so no folder can be made under it"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{path}: cannot create it, {parent} is not writable"
    return None
