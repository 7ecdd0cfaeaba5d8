"""`pixloom demo`: the main job on the built-in default, right after `make install`.

Until a text-to-image model ships, the demo renders a captioned grid of the shapes world
(the data every pixloom text-to-image model learns from) into ./outputs.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `demo` sub-command."""
    parser = subparsers.add_parser(
        "demo", help="render a captioned grid of the shapes world into ./outputs"
    )
    parser.add_argument("--out", type=Path, default=Path("outputs"), help="folder to write into")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Write outputs/shapes-grid.png (replacing an earlier demo grid) and print its path."""
    from pixloom.data.preview import PreviewRequest, render_preview

    args.out.mkdir(parents=True, exist_ok=True)
    request = PreviewRequest(
        "shapes", out=args.out / "shapes-grid.png", count=16, resolution=32, overwrite=True
    )
    print(render_preview(request).resolve())
    return 0
