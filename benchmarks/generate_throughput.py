"""Sampling throughput of a text-to-image model, bf16 vs fp32 side by side (images/s).

python benchmarks/generate_throughput.py --model runs/shapes-t2i/model --batch 64
"""

from __future__ import annotations

import argparse
import time


def measure(pipe, precision: str, batch: int, repeats: int) -> float:
    """Images per second of pipe(prompt, num_images=batch) at `precision` (warm-up excluded)."""
    pipe("a red circle", num_images=min(batch, 4), seed=0, precision=precision)
    start = time.perf_counter()
    for i in range(repeats):
        pipe("a red circle", num_images=batch, seed=i * batch, precision=precision)
    return batch * repeats / (time.perf_counter() - start)


def main() -> None:
    """Print one table row per precision."""
    import pixloom
    from pixloom.devices import cpu_has_fast_bf16

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="shapes-t2i")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    pipe = pixloom.load(args.model)
    rows = {p: measure(pipe, p, args.batch, args.repeats) for p in ("fp32", "bf16")}
    print(f"model {args.model}, batch {args.batch}, fast bf16 CPU: {cpu_has_fast_bf16()}")
    print(f"{'precision':<10}{'images/s':>12}{'vs fp32':>10}")
    for precision, rate in rows.items():
        print(f"{precision:<10}{rate:>12.1f}{rate / rows['fp32']:>9.2f}x")


if __name__ == "__main__":
    main()
