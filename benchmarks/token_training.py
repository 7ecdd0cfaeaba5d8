"""Token-transformer training step: what each CPU fast path buys, side by side in one run.

    python -m benchmarks.token_training [--model shapes-ar] [--batch 128] [--repeats 5]

Five copies of the same model (the shipped `shapes-ar` by default: its transformer, frozen
tokenizer and built-in text encoder) train on the same batch of shapes scenes with the
token-lm task's loss, backward, gradient clipping and an AdamW step. They differ only in:

1. fp32, PyTorch's fused attention kernel, the tokenizer run on every batch (a plain loop);
2. bf16 autocast, otherwise the same (pixloom before the fast paths);
3. + the written-out attention of pixloom.models.attention (its bf16 backward);
4. + the tokenizer-code cache (steady state: from the second epoch on every image hits);
5. + `--compile` (each transformer block compiled in place).

Candidates run interleaved (benchmarks.table.time_side_by_side); the first two warm-up
rounds fill the cache and compile. Ratios are against the plain fp32 loop.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
import torch.nn.functional as F

from benchmarks.table import markdown_table, time_side_by_side


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="shapes-ar", help="a raster or maskgit token model")
    parser.add_argument("--batch", type=int, default=128, help="images per step (default: 128)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (median kept)")
    args = parser.parse_args()
    import pixloom.models.token_transformer as token_transformer
    import pixloom.text.builtin as builtin
    from pixloom.data.registry import load_dataset
    from pixloom.devices import autocast, resolve_precision
    from pixloom.training.tasks.token_lm import make_token_lm_task

    started = time.perf_counter()
    dataset = load_dataset("shapes", split="train", resolution=32)
    items = [dataset[i] for i in range(args.batch)]
    batch = {"image": torch.stack([item["image"] for item in items]),
             "caption": [item["caption"] for item in items]}  # fmt: skip
    device = torch.device("cpu")

    @contextlib.contextmanager
    def fused_attention():  # the transformer's and the built-in text encoder's attention
        written_out = token_transformer.attention
        fused = lambda q, k, v, mask=None: F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # noqa: E731
        token_transformer.attention = builtin.attention = fused
        try:
            yield
        finally:
            token_transformer.attention = builtin.attention = written_out

    class EveryBatch:  # no cache: the tokenizer encodes every batch, as before
        def encode(self, tokenizer, image):
            with torch.no_grad():
                return tokenizer.encode(image).indices

    def candidate(precision: str, *, fused: bool, cache: bool, compiled: bool):
        task = make_token_lm_task({"init_from": args.model}, dataset.info)
        model = task.transformer.train()
        if not cache:
            task.codes = EveryBatch()
        if compiled:
            task.compile_modules()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        image = batch["image"]
        if precision == "bf16":
            image = image.contiguous(memory_format=torch.channels_last)
        step_batch = {**batch, "image": image}

        def step() -> None:
            with fused_attention() if fused else contextlib.nullcontext():
                with autocast(device, precision):
                    loss, _ = task.loss("lm", step_batch, 0)
                loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        return step

    bf16 = "bf16" if resolve_precision("auto", device) == "bf16" else "fp32"
    candidates = {
        "fp32, fused attention, encode every batch (plain)": candidate(
            "fp32", fused=True, cache=False, compiled=False
        ),
        f"{bf16}, fused attention, encode every batch": candidate(
            bf16, fused=True, cache=False, compiled=False
        ),
        f"{bf16}, written-out attention": candidate(bf16, fused=False, cache=False, compiled=False),
        f"{bf16}, + code cache": candidate(bf16, fused=False, cache=True, compiled=False),
        f"{bf16}, + code cache + compile": candidate(bf16, fused=False, cache=True, compiled=True),
    }
    rows = time_side_by_side(candidates, repeats=args.repeats, warmup=2)
    before = rows[1]["median_s"]
    print(f"model={args.model} batch={args.batch} threads={torch.get_num_threads()} "
          f"repeats={args.repeats} (median) auto precision={bf16}")  # fmt: skip
    print(markdown_table([
        {"step": row["name"], "ms/step": 1e3 * row["median_s"],
         "images/s": args.batch / row["median_s"], "x plain fp32": row["ratio"],
         f"x {bf16} fused": before / row["median_s"]}
        for row in rows
    ], float_format=".2f"))  # fmt: skip
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
