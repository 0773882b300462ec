"""Feature textualization for BERT-family models. Importing this package loads nothing heavy."""

from __future__ import annotations

from importlib import metadata as _metadata

__all__ = ["load", "Artifact", "__version__"]

try:  # the installed distribution's version (pyproject.toml's), also for editable installs
    __version__ = _metadata.version("ft-artifacts")
except _metadata.PackageNotFoundError:  # a bare source tree on sys.path
    __version__ = "0+unknown"


def __getattr__(name):  # lazy: torch, datasets and faiss load only when used
    if name in ("load", "Artifact"):
        from . import loader

        return getattr(loader, name)
    raise AttributeError(f"module 'ft_artifacts' has no attribute {name!r}")
