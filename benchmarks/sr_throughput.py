"""Super-resolution throughput: output megapixels per second, bf16 vs fp32 side by side.

    python benchmarks/sr_throughput.py [--size 160] [--repeats 3] [--threads N]

Runs UpscalePipeline.upscale_array (the path `pixloom upscale` takes, border padding
included) on a random LR image of SIZE x SIZE with the shipped models (ESPCN and EDSR at x2
and x4, each its own architecture: edsr-x4 has 32 residual blocks, edsr-x2 16).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from pixloom.devices import cpu_has_fast_bf16
from pixloom.pipelines.upscale import UpscalePipeline

MODELS = ["espcn-x2", "espcn-x4", "edsr-x2", "edsr-x4"]


def output_megapixels_per_second(pipe: UpscalePipeline, image: np.ndarray, repeats: int) -> float:
    """Best-of-`repeats` output MP/s (one warm-up run first)."""
    pipe.upscale_array(image)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = pipe.upscale_array(image)
        best = min(best, time.perf_counter() - start)
    return out.shape[0] * out.shape[1] / 1e6 / best


def main() -> None:
    """Print one row per model: fp32 MP/s, bf16 MP/s and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=160, help="LR side in pixels")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    image = np.random.default_rng(0).random((args.size, args.size, 3), dtype=np.float32)
    print(
        f"LR {args.size}x{args.size}, {torch.get_num_threads()} threads, "
        f"fast bf16 CPU: {cpu_has_fast_bf16()}, cuda: {torch.cuda.is_available()}"
    )
    print(f"{'model':<10} {'fp32 MP/s':>10} {'bf16 MP/s':>10} {'bf16/fp32':>10}")
    for model in MODELS:
        rates = {}
        for precision in ("fp32", "bf16"):
            pipe = UpscalePipeline(model, precision=precision)
            rates[precision] = output_megapixels_per_second(pipe, image, args.repeats)
        ratio = rates["bf16"] / rates["fp32"]
        print(f"{model:<10} {rates['fp32']:>10.2f} {rates['bf16']:>10.2f} {ratio:>9.2f}x")


if __name__ == "__main__":
    main()
