"""A word that is not one vocabulary token in, a hint that says what to type instead out.

One rule for the library, the loader and the CLI: a casing hint when the word is a token in another
casing ("the model is uncased; did you mean `crowd`?"), else the WordPiece pieces the word splits
into ("`unbelievably` is 2 tokens: `unbelievable`, `##ly`; pass `vectors=` for a mean"). Pure
Python over the token list (BERT's basic split on whitespace and punctuation, then greedy
longest-match-first WordPiece), so readers need no tokenizer. Imports neither torch nor transformers.
"""

from __future__ import annotations

import re
import unicodedata

_NEURON = re.compile(r"^L[0-9]+\.N[0-9]+$")
_MAX_CHARS = 100  # BERT's WordPiece: longer words are [UNK]


def is_uncased(tokens) -> bool:
    """True when no token outside the bracketed specials ([CLS], [unused3], ...) holds an uppercase letter."""
    return not any(t != t.lower() for t in tokens if not (t.startswith("[") and t.endswith("]")))


def _is_punctuation(char: str) -> bool:
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _basic_split(text: str) -> list[str]:
    words: list[str] = []
    for chunk in text.split():
        current = ""
        for char in chunk:
            if _is_punctuation(char):
                words += [current, char] if current else [char]
                current = ""
            else:
                current += char
        if current:
            words.append(current)
    return words


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def pieces(word: str, vocab) -> list[str]:
    """The WordPiece tokens `word` splits into over `vocab` (a set or dict of tokens); `[UNK]` for a
    word that cannot be split. An uncased vocabulary lowercases (and strips accents) first, as BERT does."""
    text = _strip_accents(word.lower()) if is_uncased(vocab) else word
    out: list[str] = []
    for part in _basic_split(text):
        if len(part) > _MAX_CHARS:
            out.append("[UNK]")
            continue
        start, found = 0, []
        while start < len(part):
            end = len(part)
            while end > start:
                candidate = part[start:end] if start == 0 else "##" + part[start:end]
                if candidate in vocab:
                    break
                end -= 1
            if end == start:
                found = ["[UNK]"]
                break
            found.append(candidate)
            start = end
        out += found
    return out


def word_hint(word: str, vocab) -> str:
    """What to do about `word`, which is not a single token of `vocab` (a set or dict of tokens): a casing
    hint, the pieces it splits into, or a plain statement. One line, naming the fix."""
    head = f"{word!r} is not a single token of this model's vocabulary"
    if not isinstance(word, str) or not word.strip():
        return f"{head}; give one token, e.g. 'crowd'"
    if _NEURON.match(word):
        return f"{head}: it is a neuron name; query it as a neuron (neuron=, --neuron)"
    if word.count("/") == 2:
        return f"{head}: it is a group key; query it as a group (group=, --group with --selection and --group-size)"
    variants = [v for v in dict.fromkeys((word.lower(), word.capitalize(), word.upper(), word.strip()))
                if v != word and v in vocab]
    if variants:
        why = "the model is uncased" if is_uncased(vocab) else "the model is cased"
        return f"{head}: {why}; did you mean `{variants[0]}`?"
    split = pieces(word, vocab)
    if "[UNK]" not in split and split and split != [word]:
        shown = ", ".join(f"`{p}`" for p in split)
        return (f"{head}: `{word}` is {len(split)} token{'s' * (len(split) != 1)}: {shown}; pass `vectors=` for a "
                "mean of their vectors, or query one of them")
    return f"{head}, nor can it be split into tokens of it"
