"""Untrusted text in (model ids, tokens, words, file names, anything read from an artifact or the Hub),
text safe for a terminal out: every character that is not printable (C0/C1 controls such as ESC, which
start OSC/CSI sequences, DEL, bidirectional overrides, line separators) is shown as a Python escape."""

from __future__ import annotations


def escape(text: object, *, keep_newlines: bool = False) -> str:
    """`text` (as str) with non-printable characters escaped (`\\x1b`, `\\u202e`); with `keep_newlines`,
    line breaks stay (for multi-line blocks) and everything else is escaped."""
    text = str(text)
    if text.isprintable():
        return text
    if keep_newlines:
        return "\n".join(escape(line) for line in text.split("\n"))
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
