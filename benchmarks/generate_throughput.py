"""Sampling throughput of a text-to-image model, bf16 vs fp32 side by side (images/s).

    python -m benchmarks.generate_throughput --model runs/shapes-t2i/model --batch 64

Two rows per precision: "batched" runs the generator network once on a batch of 64
latents (the sampling throughput of the network), "pipeline" runs pixloom's pipeline,
which draws each image at batch 1 so that any image replays bit for bit from its seed.
The candidates are interleaved in one run (benchmarks.table.time_side_by_side).
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.table import markdown_table, time_side_by_side

PROMPT = "a small red circle to the left of a large blue square"


def batched_sampler(pipe, precision: str, batch: int):
    """A closure drawing `batch` images in one generator call at `precision`."""
    from pixloom.devices import autocast

    cond = pipe.encoder.encode([PROMPT] * batch).to(pipe.device) if pipe.encoder else None
    z = torch.randn(batch, pipe.config.z_dim, generator=torch.Generator().manual_seed(0))

    @torch.no_grad()
    def run():
        with autocast(pipe.device, precision):
            if pipe.family == "stylegan":
                return pipe.generator.synthesize(
                    pipe.generator.map(z, cond), cond, noise_mode="const"
                )
            return pipe.generator(z, None, cond)

    return run


def main() -> None:
    """Print a table of images/s with ratios to the fp32 batched sampler."""
    import pixloom
    from pixloom.devices import cpu_has_fast_bf16

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="shapes-t2i")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    pipe = pixloom.load(args.model)
    candidates = {}
    for precision in ("fp32", "bf16"):
        candidates[f"batched {precision}"] = batched_sampler(pipe, precision, args.batch)
        candidates[f"pipeline {precision}"] = lambda p=precision: pipe(
            PROMPT, num_images=args.batch, seed=0, precision=p
        )
    rows = time_side_by_side(candidates, repeats=args.repeats, warmup=1, baseline="batched fp32")
    for row in rows:
        row["images/s"] = args.batch / row["median_s"]
    print(f"model {args.model}, batch {args.batch}, fast bf16 CPU: {cpu_has_fast_bf16()}")
    print(markdown_table(rows, columns=["name", "images/s", "median_s", "ratio"]))


if __name__ == "__main__":
    main()
