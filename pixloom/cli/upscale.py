"""`pixloom upscale INPUT --scale S [--model NAME|PATH] [--tile T] ...`: super-resolution."""

from __future__ import annotations

import argparse
import sys

from pixloom.cli.dataclass_args import add_dataclass_arguments, dataclass_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `upscale` sub-command; its flags come from UpscaleRequest."""
    from pixloom.pipelines.upscale import UpscaleRequest

    parser = subparsers.add_parser(
        "upscale",
        help="upscale an image or a folder x2/x3/x4 (baselines, ESPCN, EDSR, RRDB)",
        description="Upscale an image file or every image in a folder into --out as PNGs of "
        "the same names. Alpha, grayscale, 16-bit depth and pixloom metadata are kept. "
        "--tile bounds memory; tiles are cross-faded so no seams appear.",
    )
    add_dataclass_arguments(parser, UpscaleRequest)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Build the request from the flags, run it, print what was written and skipped."""
    from pixloom.pipelines.upscale import UpscaleRequest
    from pixloom.pipelines.upscale_files import upscale_files

    summary = upscale_files(dataclass_from_args(UpscaleRequest, args))
    for path in summary.written:
        print(path)
    for path, reason in summary.skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    return 0
