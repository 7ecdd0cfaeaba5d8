"""Strict config parsing: unknown fields and wrong types are refused by name (C6)."""

from dataclasses import dataclass, field
from typing import Literal

import pytest

from pixloom.configs import config_from_dict, config_to_dict
from pixloom.errors import InvalidValue


@dataclass
class Inner:
    width: int = 8


@dataclass
class Outer:
    name: str
    scale: float = 1.0
    mode: Literal["a", "b"] = "a"
    sizes: tuple[int, ...] = (1, 2)
    inner: Inner = field(default_factory=Inner)
    note: str | None = None


def test_round_trip():
    config = Outer(name="x", scale=2, sizes=(3, 4), inner=Inner(width=16))
    data = config_to_dict(config)
    assert data["sizes"] == [3, 4]
    assert config_from_dict(Outer, data) == config


def test_int_accepted_for_float_but_not_bool():
    assert config_from_dict(Outer, {"name": "x", "scale": 3}).scale == 3.0
    with pytest.raises(InvalidValue, match="config.scale"):
        config_from_dict(Outer, {"name": "x", "scale": True})


@pytest.mark.parametrize(
    ("data", "field_name"),
    [
        ({"name": "x", "colour": 1}, "config.colour"),
        ({"name": 3}, "config.name"),
        ({"name": "x", "mode": "c"}, "config.mode"),
        ({"name": "x", "sizes": [1, "two"]}, "config.sizes[1]"),
        ({"name": "x", "inner": {"depth": 2}}, "config.inner.depth"),
        ({"name": "x", "inner": {"width": 2.5}}, "config.inner.width"),
    ],
)
def test_bad_fields_are_named(data, field_name):
    with pytest.raises(InvalidValue) as info:
        config_from_dict(Outer, data)
    assert info.value.field == field_name


def test_missing_required_field():
    with pytest.raises(InvalidValue, match="required"):
        config_from_dict(Outer, {})
