"""What best-of-K sampling costs: one image's latency and batch throughput, side by side.

    python -m benchmarks.best_of --model shapes-ar --best-of 1 4 8
    python -m benchmarks.best_of --model shapes-maskgit --best-of 1 4
    python -m benchmarks.best_of --model shapes-t2i --best-of 1 16   # a GAN judged by its critic
    python -m benchmarks.best_of --model shapes-ar:8 shapes-maskgit:1,2 --precision fp32 bf16

`best_of=K` draws K drafts per image in one batch and keeps the one the model's critic
rates highest (or, for a token model without one, the one it finds likeliest). Two tables:
"one image" is `pipe(prompt)` (what `pixloom generate` does for each image; the K drafts
share one batch, so on a CPU the latency grows far less than K), and "batch" is
`draw_pairs` on `--batch` prompts (the evaluation path: one batch for token models, one
call per run of seeds for GANs; throughput falls about K-fold). The batch repeats one
prompt unless `--prompts` names a suite, 'all' or a prompt file: a token model's batch
costs more with longer prompts (its prefix spans the batch's longest one).

Several models, each with its own K after a colon, compare decoders at the settings where
their alignment matches (issue 6: MaskGIT against raster decoding at equal alignment);
`--best-of` gives the K of a model named without one. Every candidate of a table runs
interleaved in one run (benchmarks.table.time_side_by_side); ratios are to the first.
"""

from __future__ import annotations

import argparse

from benchmarks.table import markdown_table, time_side_by_side

PROMPT = "two red crosses"


def parse_model(spec: str, default_best_of: list[int]) -> tuple[str, list[int]]:
    """NAME or NAME:K[,K...] -> (name, the K to time); text after the last colon that is not
    a list of counts stays part of the name (a path may hold colons)."""
    name, colon, ks = spec.rpartition(":")
    counts = ks.split(",")
    if not colon or not all(k.isdigit() for k in counts):
        return spec, default_best_of
    return name, [int(k) for k in counts]


def batch_prompts(prompts: str | None, batch: int) -> list[str]:
    """`batch` prompts: PROMPT repeated, or evenly spaced records of a suite, 'all' or a file."""
    if prompts is None:
        return [PROMPT] * batch
    from pixloom.evaluation.alignment import load_prompts

    records = load_prompts(prompts)
    return [records[i * len(records) // batch]["prompt"] for i in range(batch)]


def main() -> None:
    """Print a table of seconds and images/s per model, best_of and precision."""
    import pixloom
    from pixloom.devices import cpu_has_fast_bf16
    from pixloom.pipelines.text_to_image import draw_pairs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", default=["shapes-ar"],
                        help="NAME or NAME:K[,K...] (its own best_of values), one or more")  # fmt: skip
    parser.add_argument("--best-of", type=int, nargs="+", default=[1, 4, 8],
                        help="the K of a model named without them")  # fmt: skip
    parser.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=None,
                        help="precisions to time (default: each pipeline's own)")  # fmt: skip
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--prompts", default=None,
                        help=f"the batch's prompts: a suite, 'all' or a .jsonl (default: "
                             f"'{PROMPT}' repeated)")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    runs = [parse_model(spec, args.best_of) for spec in args.model]
    for name, ks in runs:  # before any model loads
        if min(ks) < 1:
            parser.error(f"best_of of {name}: {min(ks)} is not an integer >= 1")
    prompts = batch_prompts(args.prompts, args.batch)
    one, batch = {}, {}
    for name, ks in runs:
        pipe = pixloom.load(name)
        for precision in args.precision or [pipe.precision]:
            for k in ks:
                label = f"{name}, best_of {k}, {precision}"
                fields = {"best_of": k, "precision": precision}
                one[f"one image: {label}"] = lambda p=pipe, f=fields: p(PROMPT, seed=0, **f)
                batch[f"batch {args.batch}: {label}"] = lambda p=pipe, f=fields: draw_pairs(
                    p, prompts, list(range(args.batch)), **f
                )
    rows = []
    for candidates, images in ((one, 1), (batch, args.batch)):
        timed = time_side_by_side(candidates, repeats=args.repeats, warmup=1)
        for row in timed:
            row["images/s"] = images / row["median_s"]
        rows += timed
    print(f"fast bf16 CPU: {cpu_has_fast_bf16()}")
    print(markdown_table(rows, columns=["name", "median_s", "images/s", "ratio"]))


if __name__ == "__main__":
    main()
