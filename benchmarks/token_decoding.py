"""Decoding speed of the token transformers, side by side in one run (tables of ratios).

    python -m benchmarks.token_decoding                     # random tiny-ish models
    python -m benchmarks.token_decoding --model runs/shapes-ar/model --batches 1 64

1. KV cache vs recomputing the whole sequence every step, at 64 and 256 tokens, at each
   --kv-batches size (batch 1 is bound by per-step overhead and weight reads; a batch
   shows the arithmetic the cache saves).
2. pixloom raster decoding vs transformers' LlamaForCausalLM.generate of identical size
   (dim, depth, heads, SwiGLU hidden, vocab; random weights), greedy and sampling, the same
   number of new tokens, at each --batches size.
3. MaskGIT (--steps, default 8) vs raster images/s, fp32 and bf16, same backbone.
4. Tokens/s and achieved FLOP/s as a fraction of the bf16 matmul peak measured here.
--model DIR takes the sizes (dim, depth, heads, mlp, vocab, grid) from a trained checkpoint;
speed does not depend on the weights, so every candidate uses random weights and no prompt.
Candidates are interleaved (benchmarks.table.time_side_by_side).
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.table import markdown_table, time_side_by_side


def build(sizes: dict, grid: int, mode: str, device):
    """A random unconditional TokenTransformer of `sizes` with grid x grid tokens."""
    from pixloom.models.registry import build_model

    family = "token-ar" if mode == "raster" else "maskgit"
    torch.manual_seed(0)
    return build_model(family, {**sizes, "grid_size": grid}).eval().to(device)


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def sampler(model, batch: int, *, mode: str, precision: str, temperature=1.0,
            use_cache=True, steps=8):  # fmt: skip
    """A closure drawing `batch` images with pixloom's samplers."""
    from pixloom.devices import autocast
    from pixloom.sampling.tokens import sample_maskgit, sample_raster

    device = model.embed.weight.device

    def run():
        generators = [torch.Generator().manual_seed(i) for i in range(batch)]
        with autocast(device, precision):
            if mode == "raster":
                sample_raster(model, None, count=batch, temperature=temperature,
                              generators=generators, use_cache=use_cache)  # fmt: skip
            else:
                sample_maskgit(model, None, count=batch, steps=steps, temperature=temperature,
                               generators=generators)  # fmt: skip
        sync(device)

    return run


def llama_generator(model, batch: int, *, sample: bool, precision: str):
    """transformers' LlamaForCausalLM of the same size, generate() with its KV cache."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from pixloom.devices import autocast

    config, device = model.config, model.embed.weight.device
    llama = LlamaForCausalLM(LlamaConfig(
        vocab_size=config.vocab + 1, hidden_size=config.dim,
        intermediate_size=config.mlp_hidden, num_hidden_layers=config.depth,
        num_attention_heads=config.heads, num_key_value_heads=config.heads,
        max_position_embeddings=model.num_tokens + 1, tie_word_embeddings=False,
        attention_bias=False, mlp_bias=False, bos_token_id=config.vocab,
        eos_token_id=None, pad_token_id=0, attn_implementation="sdpa",
    )).eval().to(device)  # fmt: skip
    bos = torch.full((batch, 1), config.vocab, device=device)
    new = model.num_tokens
    extra = {"do_sample": True, "top_k": 0} if sample else {"do_sample": False}  # full vocab

    @torch.no_grad()
    def run():
        with autocast(device, precision):
            llama.generate(bos, attention_mask=torch.ones_like(bos), max_new_tokens=new,
                           min_new_tokens=new, use_cache=True, **extra)  # fmt: skip
        sync(device)

    return run


def forward_flops(config, tokens: int, context: int) -> float:
    """FLOPs of one forward over `tokens` new positions attending to `context` keys each."""
    d, h, layers = config.dim, config.mlp_hidden, config.depth
    per_token = (
        layers * (2 * 4 * d * d + 2 * 3 * d * h + 2 * 2 * context * d) + 2 * d * config.vocab
    )
    return tokens * per_token


def decode_flops(config, mode: str, steps: int) -> float:
    """FLOPs to draw one image: raster with the cache (mean context N/2) or MaskGIT steps."""
    n = config.grid_size**2
    if mode == "raster":
        return forward_flops(config, n, n / 2)
    return steps * forward_flops(config, n, n)


def matmul_peak(device, precision: str = "bf16", side: int = 2048) -> float:
    """Measured FLOP/s of a large square matmul (the roofline the table refers to)."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a = torch.randn(side, side, device=device, dtype=dtype)
    b = torch.randn(side, side, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    sync(device)
    start, repeats = time.perf_counter(), 5
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * side**3 * repeats / (time.perf_counter() - start)


def with_rates(rows: list[dict], per_call: dict[str, tuple[int, float, int]], peak: float):
    """Add images/s, tokens/s and the fraction of the matmul peak to timing rows.

    per_call: name -> (images per call, FLOPs per image, tokens per image).
    """
    for row in rows:
        images, flops, tokens = per_call[row["name"]]
        row["images_per_s"] = images / row["median_s"]
        row["tokens_per_s"] = row["images_per_s"] * tokens
        row["peak_fraction"] = flops * row["images_per_s"] / peak
    return rows


def main() -> None:
    """Print the four tables."""
    from pixloom.devices import resolve_device

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="trained token-ar/maskgit checkpoint")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=512)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--kv-batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    sizes = {"vocab": args.vocab, "dim": args.dim, "depth": args.depth, "heads": args.heads}
    grid = 8
    if args.model:
        from pixloom.io.checkpoint import load_checkpoint

        stored = load_checkpoint(args.model, weights=False).model_config
        sizes = {k: stored[k] for k in ("vocab", "dim", "depth", "heads", "mlp_ratio")}
        grid = stored["grid_size"]
    timing = {"repeats": args.repeats, "warmup": 1}
    peak = matmul_peak(device)
    print(f"device {device}; measured bf16 matmul peak {peak / 1e9:.1f} GFLOP/s\n")

    print("## 1. KV cache vs recompute (fp32)\n")
    for batch in args.kv_batches:
        for side in (8, 16):
            model = build(sizes, side, "raster", device)
            tokens = f"{side * side} tok b{batch}"
            fns = {f"recompute {tokens}": sampler(model, batch, mode="raster", precision="fp32",
                                                  use_cache=False),
                   f"kv cache {tokens}": sampler(model, batch, mode="raster",
                                                 precision="fp32")}  # fmt: skip
            print(markdown_table(time_side_by_side(fns, **timing)), "\n")

    model = build(sizes, grid, "raster", device)
    print(f"## 2. pixloom raster vs LlamaForCausalLM.generate ({model.num_tokens} new tokens)\n")
    for batch in args.batches:
        for sample in (False, True):
            kind = "sampling" if sample else "greedy"
            fns = {f"llama {kind} b{batch}": llama_generator(model, batch, sample=sample,
                                                             precision="fp32"),
                   f"pixloom {kind} b{batch}": sampler(model, batch, mode="raster",
                                                       precision="fp32",
                                                       temperature=1.0 if sample else 0.0)}  # fmt: skip
            print(markdown_table(time_side_by_side(fns, **timing)), "\n")

    print(f"## 3-4. MaskGIT ({args.steps} steps) vs raster, fp32 and bf16, images/s and "
          "fraction of the bf16 matmul peak\n")  # fmt: skip
    maskgit = build(sizes, grid, "maskgit", device)
    for batch in args.batches:  # batch 1 is how the pipelines draw (one image per seed)
        fns, per_call = {}, {}
        for precision in ("fp32", "bf16"):
            for mode, net in (("raster", model), ("maskgit", maskgit)):
                name = f"{mode} {precision} b{batch}"
                fns[name] = sampler(net, batch, mode=mode, precision=precision, steps=args.steps)
                flops = decode_flops(net.config, mode, args.steps)
                per_call[name] = (batch, flops, net.num_tokens)
        rows = with_rates(time_side_by_side(fns, **timing), per_call, peak)
        print(markdown_table(rows), "\n")


if __name__ == "__main__":
    main()
