"""Build argparse flags from a dataclass so that a field has one name everywhere.

A field `guidance_scale` becomes `--guidance-scale`; its type, default and help come from
the dataclass. Field metadata may carry `help`, `short` (e.g. "-n") and `positional=True`.
Values the user leaves out stay `None`/default and are resolved by the library, never here.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

_SCALARS = (int, float, str, Path)


def _unwrap_optional(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(options) == 1:
            return options[0]
    return annotation


def _flag_kwargs(field: dataclasses.Field, annotation: Any) -> dict[str, Any]:
    """argparse keyword arguments for one field's (unwrapped) annotation."""
    kwargs: dict[str, Any] = {"help": field.metadata.get("help", "")}
    origin = typing.get_origin(annotation)
    if annotation is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif origin is Literal:
        choices = typing.get_args(annotation)
        kwargs["choices"] = choices
        kwargs["type"] = type(choices[0])
    elif origin in (list, tuple):
        (item,) = typing.get_args(annotation)[:1]
        kwargs["nargs"] = "+"
        kwargs["type"] = _unwrap_optional(item)
    elif annotation in _SCALARS:
        kwargs["type"] = annotation
    else:
        raise TypeError(f"field {field.name}: annotation {annotation!r} has no CLI mapping")
    return kwargs


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one flag (or positional) per field of the dataclass `cls`."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.metadata.get("cli") is False:
            continue
        kwargs = _flag_kwargs(field, _unwrap_optional(hints[field.name]))
        if field.metadata.get("positional"):
            if (
                field.default is not dataclasses.MISSING
                or field.default_factory is not dataclasses.MISSING
            ):
                kwargs["nargs"] = "?" if kwargs.get("nargs") is None else "*"
            parser.add_argument(field.name, **kwargs)
            continue
        names = [f"--{field.name.replace('_', '-')}"]
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            kwargs["required"] = True
        if "short" in field.metadata:
            names.insert(0, field.metadata["short"])
        # SUPPRESS keeps unset flags out of the namespace, so dataclass defaults apply.
        parser.add_argument(*names, dest=field.name, default=argparse.SUPPRESS, **kwargs)


def dataclass_from_args(cls: type, namespace: argparse.Namespace, **overrides: Any) -> Any:
    """Build `cls` from the parsed flags it declares (plus overrides); unset flags keep defaults."""
    names = {field.name for field in dataclasses.fields(cls)}
    values = {name: value for name, value in vars(namespace).items() if name in names}
    values.update(overrides)
    return cls(**values)
