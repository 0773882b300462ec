"""A spec in (what a user typed for a model or an artifact), what it names out: a local folder or a Hub
repo id. One rule, used by the model loader (`model.resolve_source`) and the artifact loader (`loader.load`):

1. a path that exists (after `~` expansion) is a local folder, however it is spelled (`org/name` too);
2. otherwise a Hub id (a `str`; a `pathlib.Path` never is one), `name` or `org/name` (letters, digits, `-`, `_`, `.`; each part starting and
   ending with a letter or digit, no `--` or `..`, the name at most 96 characters, as the Hub allows);
3. anything else (`./x`, `/x`, `~/x`, `a/b/c`, an empty string) names a local folder that does not exist.
"""

from __future__ import annotations

import re
from pathlib import Path

FOLDER, HUB, MISSING = "folder", "hub", "missing"
_HUB_ID = re.compile(r"^(\b[\w\-.]+\b/)?\b[\w\-.]{1,96}\b$")  # huggingface_hub's validate_repo_id pattern


def is_hub_id(text: str) -> bool:
    """`name` or `org/name` as the Hub spells repo ids (whether or not such a repo exists)."""
    return bool(_HUB_ID.match(text)) and "--" not in text and ".." not in text


def source_kind(spec: str | Path) -> tuple[str, str]:
    """(`FOLDER`, the expanded path) for an existing path; (`HUB`, spec) for a Hub id; (`MISSING`, spec) for
    what can only be a local folder and does not exist."""
    text = str(spec)
    path = Path(text).expanduser()
    if text and path.exists():
        return FOLDER, str(path)
    if isinstance(spec, str) and is_hub_id(text):
        return HUB, text
    return MISSING, text
