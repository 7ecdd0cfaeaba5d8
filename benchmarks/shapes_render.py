"""Shapes-world throughput on one core: scenes sampled + rendered per second, and items/s.

Usage: python benchmarks/shapes_render.py [--resolutions 16 32 64] [--count 20000]
The brief's bar: >= 5,000 scenes/s at 32x32 on one core.
"""

from __future__ import annotations

import argparse
import random
import time

import torch

from pixloom.data.registry import load_dataset
from pixloom.data.shapes.render import render_scene
from pixloom.data.shapes.world import DEFAULT_HELDOUT_PAIRS, parse_pairs, sample_scene


def scenes_per_second(resolution: int, count: int) -> float:
    """Sample and render `count` scenes (after a warm-up that fills the sprite cache)."""
    excluded = parse_pairs(DEFAULT_HELDOUT_PAIRS, "heldout_pairs")
    for i in range(min(count, 2000)):
        render_scene(sample_scene(random.Random(i), excluded_pairs=excluded), resolution)
    start = time.perf_counter()
    for i in range(count):
        render_scene(sample_scene(random.Random(10**7 + i), excluded_pairs=excluded), resolution)
    return count / (time.perf_counter() - start)


def items_per_second(resolution: int, count: int) -> float:
    """Full dataset items (scene, render, caption, tensor) per second."""
    dataset = load_dataset("shapes", resolution=resolution)
    for i in range(min(count, 2000)):
        dataset[i]
    start = time.perf_counter()
    for i in range(count):
        dataset[10_000 + i]
    return count / (time.perf_counter() - start)


def main() -> None:
    """Print a table of throughput per resolution."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--count", type=int, default=20000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'resolution':>10} {'scenes/s':>10} {'items/s':>10}   (one core)")
    for resolution in args.resolutions:
        count = args.count if resolution <= 64 else args.count // 4
        scenes = scenes_per_second(resolution, count)
        items = items_per_second(resolution, count)
        print(f"{resolution:>10} {scenes:>10.0f} {items:>10.0f}")


if __name__ == "__main__":
    main()
