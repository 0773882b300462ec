"""Resume state in and out, verified like an artifact: every file a build keeps in `.partial/` for
resuming (the scan, the plan, each chunk and its timing) is recorded with its sha256 when written, and
checked, from the very bytes that are then decoded, when read back.

A record is a small JSON file that carries a checksum of itself ("check"), so a flipped byte in the
record is caught as surely as one in the file it describes. A record also names what the file must
hold (`identity`: the build's settings, and for a chunk its config, number and rows in order), so a
file swapped with another one, or left by another build, is not taken for this one.
A file whose record is missing, damaged or disagrees is redone (one log line names it).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from ft_artifacts.files import atomic_path
from ft_artifacts.safejson import loads

RECORD_LIMIT = 1 << 20  # a record is a few hundred bytes
PLAN_LIMIT = 1 << 30  # plan.json lists every row's objective: large for atlases, but bounded


class Damaged(ValueError):
    """A resume file that is missing, unreadable, or not what its record says (the message says which)."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def identity(value: Any) -> str:
    """The sha256 of a value's canonical JSON: names what a file must hold."""
    return sha256(canonical(value))


def write_record(path: Path, record: dict, tmp_dir: Path | None) -> None:
    body = {k: v for k, v in record.items() if k != "check"}
    with atomic_path(path, tmp_dir=tmp_dir) as tmp:
        tmp.write_bytes(canonical(dict(body, check=identity(body))))


def read_record(path: Path) -> dict:
    """A record, checked against its own checksum; `Damaged` otherwise."""
    data = read_bytes(path, RECORD_LIMIT)
    try:
        record = loads(data, max_bytes=RECORD_LIMIT)
    except ValueError as exc:
        raise Damaged(f"{path.name} is not valid JSON ({exc})") from None
    if not isinstance(record, dict) or record.get("check") != identity({k: v for k, v in record.items() if k != "check"}):
        raise Damaged(f"{path.name} does not match its own checksum")
    return record


def read_bytes(path: Path, limit: int) -> bytes:
    """A regular file's bytes (never through a symbolic link), at most `limit` of them."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise Damaged(f"{path.name} is missing") from None
    except OSError as exc:
        raise Damaged(f"{path.name} cannot be opened ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Damaged(f"{path.name} is not a regular file")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise Damaged(f"{path.name} is larger than {limit} bytes")
    return data


def file_entry(data: bytes) -> dict:
    return {"sha256": sha256(data), "size": len(data)}


def check_entry(name: str, data: bytes, entry: Any) -> bytes:
    """`data` itself when it is what `entry` ({"sha256", "size"}) recorded; `Damaged` otherwise."""
    if not isinstance(entry, dict) or entry.get("size") != len(data) or entry.get("sha256") != sha256(data):
        raise Damaged(f"{name} differs from the sha256 recorded when it was written")
    return data


# The files a build writes into `.partial/`, by path relative to it. Nothing else is ever deleted.
OWN = re.compile(r"^(lock|build\.json|scan\.npz|plan\.json|plan\.record\.json|"
                 r"chunks/[a-z_]+-[0-9]{5}\.(parquet|json)|tmp/\.[^/]+\.tmp)$")
OWN_DIRS = ("chunks", "tmp")


def foreign_entries(work: Path) -> list[str]:
    """What `.partial/` holds that a build does not write: other files, other folders, and any
    symbolic link (never followed). An empty list for a folder a build may use and clear."""
    foreign = []
    for folder, dirs, files in os.walk(work, followlinks=False):
        base = Path(folder)
        for name in sorted(dirs):
            rel = (base / name).relative_to(work).as_posix()
            if (base / name).is_symlink() or rel not in OWN_DIRS:
                foreign.append(rel + ("" if (base / name).is_symlink() else "/"))
        dirs[:] = [d for d in dirs if not (base / d).is_symlink() and (base / d).relative_to(work).as_posix() in OWN_DIRS]
        for name in sorted(files):
            path = base / name
            rel = path.relative_to(work).as_posix()
            if path.is_symlink() or not OWN.match(rel):
                foreign.append(rel)
    return foreign


def clear(work: Path, only: str = "") -> None:
    """Delete the files a build writes in `work` (as `OWN` names them; with `only`, those whose path
    starts with it), never following a link, then the folders left empty. Anything else stays."""
    if work.is_symlink() or not work.is_dir():
        return
    for folder, dirs, files in os.walk(work, topdown=False, followlinks=False):
        base = Path(folder)
        for name in files:
            rel = (base / name).relative_to(work).as_posix()
            if OWN.match(rel) and not (base / name).is_symlink() and rel.startswith(only):
                os.unlink(base / name)
        if not only and not any(base.iterdir()):
            base.rmdir()
