"""Dataclass configs <-> JSON, exactly: loading is the inverse of saving, unknown keys are refused."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

from blender_addon.formats.errors import FormatError

C = TypeVar("C")


def config_to_dict(config: Any) -> dict[str, Any]:
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"{type(config).__name__} is not a dataclass")
    return dataclasses.asdict(config)


def config_from_dict(cls: type[C], data: Any, field_path: str = "config") -> C:
    """Build dataclass ``cls`` from a dict, recursing into nested dataclasses; tuples come back as tuples."""
    if not isinstance(data, dict):
        raise FormatError(field_path, f"must be an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise FormatError(f"{field_path}.{unknown[0]}", f"unknown setting; known: {', '.join(sorted(fields))}")
    values = {}
    for name, value in data.items():
        values[name] = _coerce(hints[name], value, f"{field_path}.{name}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise FormatError(field_path, str(error)) from None


def _coerce(hint: Any, value: Any, field_path: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return config_from_dict(hint, value, field_path)
    if origin is tuple and isinstance(value, (list, tuple)):
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], item, f"{field_path}[{i}]") for i, item in enumerate(value))
        return tuple(value)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        dataclass_options = [arg for arg in typing.get_args(hint) if dataclasses.is_dataclass(arg)]
        if isinstance(value, dict) and len(dataclass_options) == 1:
            return config_from_dict(dataclass_options[0], value, field_path)
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and not isinstance(value, hint):
        raise FormatError(field_path, f"must be {hint.__name__}, got {type(value).__name__} {value!r}")
    return value
