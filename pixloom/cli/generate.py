"""`pixloom generate "PROMPT" [-n N] [--seed S] [--truncation PSI] [--model M] [--out DIR]`."""

from __future__ import annotations

import argparse

from pixloom.cli.dataclass_args import add_dataclass_arguments, dataclass_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `generate` sub-command; its flags come from TextToImageRequest."""
    from pixloom.pipelines.text_to_image import TextToImageRequest

    parser = subparsers.add_parser(
        "generate",
        help="draw images from a text prompt (GANs, raster and MaskGIT token models)",
        description="Draw images of a prompt into --out as PNGs carrying the resolved request; "
        "image i uses seed + i; --from IMAGE.png replays an image exactly; existing files are "
        "never replaced without --overwrite.",
    )
    add_dataclass_arguments(parser, TextToImageRequest)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Build the request from the flags, generate, print the written paths."""
    import pixloom.api
    from pixloom.pipelines.text_to_image import (
        DEFAULT_MODEL,
        TextToImageRequest,
        generate_files,
        replay_request,
    )

    request = dataclass_from_args(TextToImageRequest, args)
    if request.from_image is not None:
        request = replay_request(request.from_image, request)
    pipe = pixloom.api.load(request.model or DEFAULT_MODEL, device=request.device)
    for path in generate_files(request, pipe):
        print(path)
    return 0
