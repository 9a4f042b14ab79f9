"""Frozen dataclasses <-> JSON, strictly typed: the one round trip for configs and genome files.

Tuples, ``Path`` and optional fields are restored from their JSON forms; unknown fields raise
``ValueError`` naming the class, so a typo in a config or a file from a newer blur is an error,
never silently dropped.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any


def to_jsonable(value: Any) -> Any:
    """Dataclasses to dicts, tuples to lists, paths to strings (recursively)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def from_jsonable(tp: Any, value: Any) -> Any:
    """Inverse of :func:`to_jsonable` for the type ``tp`` (a dataclass or a field type)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"expected an object for {tp.__name__}, got {value!r}")
        hints = typing.get_type_hints(tp)
        names = {f.name for f in dataclasses.fields(tp)}
        unknown = set(value) - names
        if unknown:
            raise ValueError(f"unknown {tp.__name__} fields {sorted(unknown)}")
        return tp(**{k: from_jsonable(hints[k], v) for k, v in value.items()})
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return from_jsonable(inner[0], value) if len(inner) == 1 else value
    if origin is tuple and value is not None:
        if not isinstance(value, list | tuple):
            raise ValueError(f"expected a list for {tp}, got {value!r}")
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        return tuple(from_jsonable(inner, v) for v in value)
    if tp is Path:
        return Path(value)
    return value
