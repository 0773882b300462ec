"""JSON text in, Python values out, within bounds: a size limit checked before parsing and a nesting
limit checked by a linear scan before `json.loads` recurses (deep nesting would raise RecursionError,
large files would cost many times their size in memory)."""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64
# A string, or one bracket. Strings are matched whole so that brackets inside them are not counted.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


class JSONLimitError(ValueError):
    """The text is larger or nested deeper than allowed (a ValueError, as json's own errors)."""


def nesting(text: str, limit: int = MAX_DEPTH) -> int:
    """The deepest nesting of arrays and objects in `text`, counted up to `limit` + 1."""
    depth = deepest = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif token in "]}":
            depth -= 1
    return deepest


def loads(data: str | bytes, *, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """`json.loads`, refusing text over `max_bytes` or nested deeper than `max_depth`."""
    if len(data) > max_bytes:
        raise JSONLimitError(f"{len(data)} bytes is more than the {max_bytes} allowed")
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    if nesting(text, max_depth) > max_depth:
        raise JSONLimitError(f"nested deeper than {max_depth} levels")
    return json.loads(text)
