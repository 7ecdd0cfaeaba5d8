"""Strict conversion between typed dataclass configs and plain dicts (JSON, YAML).

Configs are the single definition of a model's or a run's shape. Reading one from a file
refuses unknown fields and wrong types with the field named, never silently drops them.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, Union

from pixloom.errors import InvalidValue


def _check_type(value: Any, annotation: Any, where: str) -> Any:
    """Return value converted to `annotation` where lossless (list->tuple), else raise."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if origin in (Union, types.UnionType):
        errors = []
        for option in typing.get_args(annotation):
            try:
                return _check_type(value, option, where)
            except InvalidValue as error:
                errors.append(error.valid)
        raise InvalidValue(where, value, " or ".join(errors))
    if annotation is type(None):
        if value is None:
            return None
        raise InvalidValue(where, value, "null")
    if origin is Literal:
        if value in typing.get_args(annotation):
            return value
        raise InvalidValue(where, value, f"one of {list(typing.get_args(annotation))}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise InvalidValue(where, value, f"a list ({annotation})")
        args = typing.get_args(annotation)
        item_type = args[0] if args else Any
        items = [_check_type(item, item_type, f"{where}[{i}]") for i, item in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise InvalidValue(where, value, "a mapping")
        return dict(value)
    if dataclasses.is_dataclass(annotation):
        return config_from_dict(annotation, value, where=where)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation in (int, float) and isinstance(value, bool):
        raise InvalidValue(where, value, f"a number ({annotation.__name__})")
    if isinstance(annotation, type) and not isinstance(value, annotation):
        raise InvalidValue(where, value, f"a value of type {annotation.__name__}")
    return value


def config_from_dict(cls: type, data: Any, *, where: str = "config") -> Any:
    """Build dataclass `cls` from `data`, refusing unknown fields and wrong types by name."""
    if not isinstance(data, dict):
        raise InvalidValue(where, data, f"a mapping of {cls.__name__} fields")
    fields = {field.name: field for field in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InvalidValue(
            f"{where}.{unknown[0]}",
            data[unknown[0]],
            f"not a field of {cls.__name__}; known: {', '.join(fields)}",
        )
    hints = typing.get_type_hints(cls)
    values = {
        name: _check_type(value, hints[name], f"{where}.{name}") for name, value in data.items()
    }
    try:
        return cls(**values)
    except TypeError as error:  # a required field is missing
        raise InvalidValue(
            where, sorted(data), f"{cls.__name__} needs every required field: {error}"
        ) from error


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain, JSON-ready dict of a dataclass config (tuples become lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [plain(item) for item in value]
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        return value

    return plain(dataclasses.asdict(config))
