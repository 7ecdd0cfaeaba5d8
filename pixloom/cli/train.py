"""`pixloom train`: flags come from TrainConfig; a preset supplies defaults; the engine runs.

Precedence: TrainConfig defaults < the preset (--preset NAME|PATH.yaml) < command-line flags;
`--option key=value` (repeatable, value parsed as YAML) adds to the preset's task_options.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from typing import Any

import yaml

from pixloom.cli.dataclass_args import add_dataclass_arguments
from pixloom.configs import config_from_dict
from pixloom.errors import InvalidValue


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """Turn ["width=32", "augment=true"] into {"width": 32, "augment": True}."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, equals, text = pair.partition("=")
        if not equals or not key.strip():
            raise InvalidValue("option", pair, "KEY=VALUE, e.g. --option width=32")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as error:
            raise InvalidValue(f"option {key}", text, f"a YAML scalar ({error})") from error
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            with contextlib.suppress(ValueError):
                value = float(value)
        options[key.strip()] = value
    return options


def build_config(args: argparse.Namespace):
    """The TrainConfig from the preset, the flags and the --option pairs."""
    from pixloom.training.config import TrainConfig
    from pixloom.training.presets import load_preset

    data = load_preset(args.preset) if args.preset else {}
    for field in dataclasses.fields(TrainConfig):
        if hasattr(args, field.name):
            data[field.name] = getattr(args, field.name)
    options = data.get("task_options") or {}
    if not isinstance(options, dict):
        raise InvalidValue("task_options", options, "a mapping of task options")
    data["task_options"] = {**options, **parse_options(args.option)}
    return config_from_dict(TrainConfig, data, where="config")


def run_train(args: argparse.Namespace) -> int:
    """Train and print where the results are."""
    from pixloom.training.engine import train

    result = train(build_config(args))
    if result.checkpoint is None:  # ranks > 0 print nothing
        return 0
    if result.interrupted:
        print(
            f"interrupted at step {result.step}; checkpoint {result.checkpoint}; "
            "rerun the same command to resume"
        )
        return 0
    losses = ", ".join(f"{key}={value:.4g}" for key, value in result.metrics.items())
    print(f"trained {result.step} steps ({result.images_per_second:.1f} images/s): {losses}")
    print(f"model: {result.model}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `train` sub-command."""
    from pixloom.training.config import TrainConfig

    parser = subparsers.add_parser(
        "train",
        help="train a model (resumes from OUT/latest)",
        description="Train a model with the pixloom engine; flags override the preset.",
    )
    parser.add_argument("--preset", help="preset name in pixloom/presets or a YAML path")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="task option (repeatable), e.g. --option width=32",
    )
    add_dataclass_arguments(parser, TrainConfig)
    parser.set_defaults(handler=run_train)
