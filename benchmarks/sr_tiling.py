"""Tiled versus untiled upscaling: the largest difference, per model and precision.

    python -m benchmarks.sr_tiling [--hr ../shared/data/set5] [--models edsr-x2 edsr-x4]
                                   [--tiles 32 64] [--overlap N]

For every HR image the LR input is made as `pixloom eval sr` makes it (crop to a multiple of
the scale, PIL bicubic down), upscaled whole and with each tile size, and the largest
absolute difference is reported in 1/255 units, on the float output and on the 8-bit PNG
pixels, in fp32 and bf16. The requirement is at most 1/255 everywhere.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.table import markdown_table
from pixloom.io.images import decode_image
from pixloom.metrics.sr_protocol import hr_files, protocol_pair
from pixloom.pipelines.upscale import UpscalePipeline, resolve_overlap


def low_resolution(path: Path, scale: int) -> Image.Image:
    """The protocol's LR image of an HR file (pixloom.metrics.sr_protocol.protocol_pair)."""
    return protocol_pair(decode_image(path).convert("RGB"), scale)[1]


def largest_differences(pipe: UpscalePipeline, images: list[Image.Image], tiles, overlap):
    """(float, 8-bit) largest |tiled - untiled| over images and tile sizes, in 1/255 units."""
    worst_float, worst_8bit = 0.0, 0
    for image in images:
        whole = pipe(image)
        for tile in tiles:
            tiled = pipe(image, tile=tile, tile_overlap=overlap)
            gap = np.abs(whole.arrays[0] - tiled.arrays[0]).max() * 255
            pixels = np.abs(
                np.asarray(whole.images[0], dtype=np.int16)
                - np.asarray(tiled.images[0], dtype=np.int16)
            ).max()
            worst_float, worst_8bit = max(worst_float, float(gap)), max(worst_8bit, int(pixels))
    return worst_float, worst_8bit


def main() -> None:
    """Print one row per model and precision."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hr", default="../shared/data/set5", help="folder of HR images")
    parser.add_argument("--models", nargs="+", default=["edsr-x2", "edsr-x4"])
    parser.add_argument("--tiles", type=int, nargs="+", default=[32, 64])
    parser.add_argument(
        "--overlap", type=int, default=None, help="LR context per tile; default: the pipeline's"
    )
    args = parser.parse_args()
    paths = hr_files(Path(args.hr))
    rows = []
    for model in args.models:
        for precision in ("fp32", "bf16"):
            pipe = UpscalePipeline(model, precision=precision)
            images = [low_resolution(path, pipe.scale) for path in paths]
            gap, pixels = largest_differences(pipe, images, args.tiles, args.overlap)
            rows.append(
                {
                    "model": model,
                    "precision": pipe.precision,
                    "tiles": " ".join(map(str, args.tiles)),
                    "overlap": " ".join(
                        str(resolve_overlap(tile, args.overlap)) for tile in args.tiles
                    ),
                    "float max (1/255)": round(gap, 3),
                    "8-bit max (1/255)": pixels,
                }
            )
    print(f"{len(paths)} images from {args.hr}\n")
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
