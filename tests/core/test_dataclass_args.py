"""CLI flags come from the dataclass: one name per parameter, defaults left to the library."""

import argparse
from dataclasses import dataclass, field
from typing import Literal

from pixloom.cli.dataclass_args import add_dataclass_arguments, dataclass_from_args


@dataclass
class Request:
    prompt: str = field(metadata={"positional": True, "help": "the text"})
    num_images: int = field(default=1, metadata={"short": "-n"})
    guidance_scale: float | None = None
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    grid: bool = False
    tags: list[str] | None = None
    internal: int = field(default=0, metadata={"cli": False})


def parse(argv):
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, Request)
    return dataclass_from_args(Request, parser.parse_args(argv))


def test_flags_map_to_fields():
    request = parse(
        ["a red circle", "-n", "4", "--guidance-scale", "2.5", "--grid", "--tags", "x", "y"]
    )
    assert request == Request("a red circle", 4, 2.5, "auto", True, ["x", "y"])


def test_unset_flags_keep_dataclass_defaults():
    assert parse(["p"]) == Request("p")


def test_choices_are_enforced(capsys):
    try:
        parse(["p", "--precision", "fp8"])
    except SystemExit as exit_:
        assert exit_.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_hidden_fields_have_no_flag():
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, Request)
    assert "--internal" not in parser.format_help()
