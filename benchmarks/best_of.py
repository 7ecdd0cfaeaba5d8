"""What best-of-K sampling costs: one image's latency and batch throughput, K side by side.

    python -m benchmarks.best_of --model shapes-ar --best-of 1 4 8
    python -m benchmarks.best_of --model shapes-maskgit --best-of 1 4
    python -m benchmarks.best_of --model shapes-t2i --best-of 1 16   # a GAN judged by its critic

`best_of=K` draws K drafts per image in one batch and keeps the one the model's critic
rates highest (or, for a token model without one, the one it finds likeliest). Two rows
per K: "one image" is `pipe(prompt)` (what `pixloom generate` does for each image; the K
drafts share one batch, so on a CPU the latency grows far less than K), and "batch" is
`draw_pairs` on `--batch` prompts (the evaluation path: one batch for token models, one
call per run of seeds for GANs; throughput falls about K-fold). Interleaved in one run
(benchmarks.table.time_side_by_side); ratios are to best_of=1.
"""

from __future__ import annotations

import argparse

from benchmarks.table import markdown_table, time_side_by_side

PROMPT = "two red crosses"


def main() -> None:
    """Print a table of seconds and images/s per best_of, with ratios to best_of=1."""
    import pixloom
    from pixloom.devices import cpu_has_fast_bf16
    from pixloom.pipelines.text_to_image import draw_pairs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="shapes-ar")
    parser.add_argument("--best-of", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    pipe = pixloom.load(args.model)
    one, batch = {}, {}
    for k in args.best_of:
        one[f"one image, best_of {k}"] = lambda k=k: pipe(PROMPT, seed=0, best_of=k)
        batch[f"batch {args.batch}, best_of {k}"] = lambda k=k: draw_pairs(
            pipe, [PROMPT] * args.batch, list(range(args.batch)), best_of=k
        )
    rows = []
    for candidates, images in ((one, 1), (batch, args.batch)):
        timed = time_side_by_side(candidates, repeats=args.repeats, warmup=1)
        for row in timed:
            row["images/s"] = images / row["median_s"]
        rows += timed
    print(f"model {args.model}, precision {pipe.precision}, fast bf16 CPU: {cpu_has_fast_bf16()}")
    print(markdown_table(rows, columns=["name", "median_s", "images/s", "ratio"]))


if __name__ == "__main__":
    main()
