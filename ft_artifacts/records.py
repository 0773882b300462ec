"""Typed records to and from JSON-ready dicts, in one place: the manifest's payload sections and the
evaluation are dataclasses, written with `to_dict` and read back with `from_dict` (nested dataclasses,
lists, tuples, dicts and optional fields by their type hints). Unknown keys are refused on reading, missing
keys take the field's default where it has one."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from functools import lru_cache

from .errors import ArtifactError


class Record:
    """Mixin: `to_dict()` and `cls.from_dict(data)` by the dataclass's fields and type hints."""

    def to_dict(self) -> dict:
        return to_json(self)

    @classmethod
    def from_dict(cls, data, where: str = ""):
        return from_json(cls, data, where or cls.__name__)


def to_json(value):
    """A record (or a nest of them) as plain JSON values; NaN and +-inf become None (strict JSON)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars
        return to_json(value.item())
    return value


@lru_cache(maxsize=None)
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def from_json(kind, data, where: str):
    """`data` read as `kind` (a type hint); `ArtifactError` naming `where` if it does not fit."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return from_json(inner[0], data, where) if len(inner) == 1 else data
    if kind is typing.Any:
        return data
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        if not isinstance(data, dict):
            raise ArtifactError(f"{where} is not an object")
        hints, names = _hints(kind), {f.name for f in dataclasses.fields(kind)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ArtifactError(f"{where} has unknown key(s) {', '.join(unknown)}")
        values = {}
        for f in dataclasses.fields(kind):
            if f.name in data:
                values[f.name] = from_json(hints[f.name], data[f.name], f"{where}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ArtifactError(f"{where} lacks {f.name!r}")
        return kind(**values)
    if origin in (list, tuple):
        if not isinstance(data, (list, tuple)):
            raise ArtifactError(f"{where} is not a list")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(data):
                raise ArtifactError(f"{where} does not hold {len(args)} values")
            return tuple(from_json(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, data)))
        item = args[0] if args else typing.Any
        out = [from_json(item, v, f"{where}[{i}]") for i, v in enumerate(data)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(data, dict):
            raise ArtifactError(f"{where} is not an object")
        item = args[1] if args else typing.Any
        return {k: from_json(item, v, f"{where}.{k}") for k, v in data.items()}
    if kind is float:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise ArtifactError(f"{where} is not a number")
        return float(data)
    if kind in (int, str, bool):
        if not isinstance(data, kind) or (kind is int and isinstance(data, bool)):
            raise ArtifactError(f"{where} is not a {kind.__name__}")
        return data
    return data
