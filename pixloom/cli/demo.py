"""`pixloom demo`: the main job on the built-in default, right after `make install`.

Draws four images for each of a handful of prompts (a single object, a position, two
objects, a relation, a count) with the shipped text-to-image model, writes every image with
its replayable metadata and one captioned grid into ./outputs, and prints the paths.
Everything it needs ships in the package, so it works offline.
"""

from __future__ import annotations

import argparse
from pathlib import Path

IMAGES_PER_PROMPT = 4
CELL = 128  # grid cells are the 32 px images enlarged without smoothing


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `demo` sub-command."""
    from pixloom.pipelines.text_to_image import DEFAULT_MODEL

    parser = subparsers.add_parser(
        "demo", help="draw a grid for a few prompts with the shipped text-to-image model"
    )
    parser.add_argument("--out", type=Path, default=Path("outputs"), help="folder to write into")
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"text-to-image model (default {DEFAULT_MODEL})"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Write the images and outputs/demo-grid.png (replacing an earlier demo); print paths."""
    from PIL import Image

    import pixloom
    from pixloom.io.grid import make_grid
    from pixloom.io.images import save_png
    from pixloom.pipelines.text_to_image import TextToImageRequest, demo_prompts, generate_files

    pipe = pixloom.load(args.model)
    images, captions = [], []
    for prompt in demo_prompts():
        request = TextToImageRequest(
            prompt, num_images=IMAGES_PER_PROMPT, seed=0, out=str(args.out), overwrite=True
        )
        for path in generate_files(request, pipe):
            print(path)
            with Image.open(path) as image:
                images.append(image.convert("RGB").resize((CELL, CELL), Image.NEAREST))
            captions.append(prompt)
    grid = make_grid(images, captions, columns=IMAGES_PER_PROMPT)
    path = save_png(grid, args.out / "demo-grid.png", metadata={"model": args.model},
                    overwrite=True)  # fmt: skip
    print(f"grid: {Path(path).resolve()}")
    return 0
