"""`pixloom data list` and `pixloom data show NAME --out grid.png`: look at the datasets."""

from __future__ import annotations

import argparse

from pixloom.cli.dataclass_args import add_dataclass_arguments, dataclass_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `data` sub-command with its `list` and `show` actions."""
    from pixloom.data.preview import PreviewRequest

    parser = subparsers.add_parser("data", help="list datasets or render a captioned grid")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="print the registered dataset names")
    listing.set_defaults(handler=run_list)
    show = actions.add_parser("show", help="render a grid of items with captions to a PNG")
    add_dataclass_arguments(show, PreviewRequest)
    show.set_defaults(handler=run_show)


def run_list(args: argparse.Namespace) -> int:
    """Print one dataset name per line."""
    from pixloom.data.registry import dataset_names

    for name in dataset_names():
        print(name)
    return 0


def run_show(args: argparse.Namespace) -> int:
    """Render the grid and print its path."""
    from pixloom.data.preview import PreviewRequest, render_preview

    print(render_preview(dataclass_from_args(PreviewRequest, args)))
    return 0
