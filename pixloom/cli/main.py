"""Entry point of the `pixloom` command: one sub-command module per verb.

Each module in COMMANDS exposes `register(subparsers)`, which adds its parser and sets
`handler` (a function taking the parsed namespace and returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from pixloom import __version__
from pixloom.errors import PixloomError

# verb -> module; the module is imported only when the parser is built.
COMMANDS = {
    "upscale": "pixloom.cli.upscale",
    "data": "pixloom.cli.data",
    "info": "pixloom.cli.info",
    "export": "pixloom.cli.export",
    "train": "pixloom.cli.train",
    "eval": "pixloom.cli.eval",
    "demo": "pixloom.cli.demo",
    "generate": "pixloom.cli.generate",
}


def build_parser() -> argparse.ArgumentParser:
    """The full `pixloom` parser with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog="pixloom", description="Language-driven visual generation: train, generate, measure."
    )
    parser.add_argument("--version", action="version", version=f"pixloom {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMANDS.values():
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print one line and exit 2, never a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except PixloomError as error:
        print(f"pixloom {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pixloom {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
