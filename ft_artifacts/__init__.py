"""Feature textualization for BERT-family models. Importing this package loads nothing heavy."""

from __future__ import annotations

__all__ = ["load", "Artifact", "__version__"]


def __getattr__(name):  # lazy: torch, datasets and faiss load only when used, importlib.metadata (30 ms) too
    if name in ("load", "Artifact"):
        from . import loader

        return getattr(loader, name)
    if name == "__version__":  # the installed distribution's version (pyproject.toml's), also for editable installs
        from importlib import metadata

        try:
            version = metadata.version("ft-artifacts")
        except metadata.PackageNotFoundError:  # a bare source tree on sys.path
            version = "0+unknown"
        globals()["__version__"] = version
        return version
    raise AttributeError(f"module 'ft_artifacts' has no attribute {name!r}")
