"""Evaluation drawing, side by side: one image at a time (as `pixloom generate` draws, so each
replays alone) against the batched `draw_batch` that `pixloom eval` now uses.

    python -m benchmarks.eval_drawing --model shapes-ar --prompts single

Both draw images-per-prompt images of every prompt of a suite from the same seeds; the
table gives images/s, the speed-up, and how far the images differ: in bf16 the batched
decoder rounds differently, so pixels may move by a level; a larger gap means a different
token was drawn.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.table import markdown_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="shapes-ar", help="a token model (name or directory)")
    parser.add_argument("--prompts", default="single", help="a built-in suite or .jsonl file")
    parser.add_argument("--images-per-prompt", type=int, default=4)
    args = parser.parse_args()

    import pixloom
    from pixloom.evaluation import generate_images
    from pixloom.evaluation.alignment import load_prompts
    from pixloom.pipelines.text_to_image import draw_pairs

    pipe = pixloom.load(args.model)
    records = load_prompts(args.prompts)
    prompts = [r["prompt"] for r in records for _ in range(args.images_per_prompt)]
    seeds = [s for _ in records for s in range(args.images_per_prompt)]

    def alone(batch_prompts: list[str], batch_seeds: list[int]) -> list:
        """The pipeline called per prompt, each image drawn alone (no draw_batch)."""
        return draw_pairs(pipe.__call__, batch_prompts, batch_seeds)

    def batched(batch_prompts: list[str], batch_seeds: list[int]) -> list:
        return draw_pairs(pipe, batch_prompts, batch_seeds)

    rows, results = [], {}
    for name, generate in (("one image at a time", alone), ("draw_batch (64 per call)", batched)):
        start = time.perf_counter()
        results[name] = generate_images(generate, prompts, seeds)
        seconds = time.perf_counter() - start
        rows.append({"drawing": name, "images": len(prompts), "seconds": seconds,
                     "images/s": len(prompts) / seconds})  # fmt: skip
    rows[1]["speed-up"] = rows[0]["seconds"] / rows[1]["seconds"]
    first, second = results.values()
    gaps = [
        int(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max())
        for a, b in zip(first, second)
    ]
    print(markdown_table(rows, float_format=".3g"))
    print(f"\n{args.model} on {args.prompts}: {sum(g > 0 for g in gaps)} of {len(gaps)} images "
          f"differ at all, {sum(g > 2 for g in gaps)} by more than 2 levels of 255 "
          f"(largest {max(gaps)}).")  # fmt: skip


if __name__ == "__main__":
    main()
