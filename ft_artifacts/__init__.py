"""Feature textualization for BERT-family models. Importing this package loads nothing heavy."""

from __future__ import annotations

__all__ = ["load", "Artifact"]


def __getattr__(name):  # lazy: torch, datasets and faiss load only when used
    if name in __all__:
        from . import loader

        return getattr(loader, name)
    raise AttributeError(f"module 'ft_artifacts' has no attribute {name!r}")
