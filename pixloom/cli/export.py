"""`pixloom export SOURCE TARGET [--dtype D] [--average C]...`: an inference copy."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `export` sub-command."""
    from pixloom.io.checkpoint import DEFAULT_STORAGE_DTYPE, STORAGE_DTYPES

    parser = subparsers.add_parser(
        "export",
        help="copy a checkpoint for inference, weights stored as float16 (half the size)",
        description="Write an inference copy of a checkpoint directory: the training state "
        "is dropped and floating-point weights are stored as --dtype. Loading casts them back "
        "to float32. This is how the shipped token models are made from their training runs.",
    )
    parser.add_argument(
        "source", help="checkpoint directory (e.g. runs/shapes-ar/model) or shipped model name"
    )
    parser.add_argument("target", help="directory to write (replaced atomically if present)")
    parser.add_argument(
        "--dtype", default=DEFAULT_STORAGE_DTYPE, choices=list(STORAGE_DTYPES),
        help=f"storage dtype of floating-point weights (default: {DEFAULT_STORAGE_DTYPE})",
    )  # fmt: skip
    parser.add_argument(
        "--tokenizer", default=None,
        help="a 'vq' checkpoint whose decoder (and a text-conditioned decoder's prompt "
        "encoder) replaces that of the tokenizer a token model holds; its encoder and "
        "codebook must equal the held ones (vq task decoder_only)",
    )  # fmt: skip
    parser.add_argument(
        "--critic", default=None,
        help="a 'critic' checkpoint (pixloom train --preset shapes-critic) put inside a token "
        "model: its best_of drafts are then judged by the critic instead of by their "
        "likelihood under the model",
    )  # fmt: skip
    parser.add_argument(
        "--sampling", action="append", default=[], metavar="NAME=VALUE",
        help="store a default request field in the copy (e.g. temperature=0.5), used when a "
        "request leaves it unset; repeatable. Fields: the generate options the family uses",
    )  # fmt: skip
    parser.add_argument(
        "--average", action="append", default=[], metavar="CHECKPOINT",
        help="another checkpoint of the same model whose weights are averaged with the "
        "source's, each counted once (a checkpoint soup); repeatable",
    )  # fmt: skip
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Export args.source to args.target and print the result's size and sha256."""
    from pixloom.io.checkpoint import WEIGHTS_FILE, export_checkpoint, load_checkpoint
    from pixloom.models.loading import resolve_checkpoint

    source = resolve_checkpoint(args.source)
    tokenizer = None if args.tokenizer is None else resolve_checkpoint(args.tokenizer)
    critic = None if args.critic is None else resolve_checkpoint(args.critic)
    held = load_checkpoint(source, weights=False).config
    judged = critic is not None or bool(held["model"].get("critic"))
    sampling = _sampling(args.sampling, held, judged=judged)
    average = [resolve_checkpoint(other) for other in args.average]
    target = export_checkpoint(
        source, args.target, dtype=args.dtype, tokenizer=tokenizer, sampling=sampling,
        average=average, critic=critic,
    )  # fmt: skip
    written = load_checkpoint(target, weights=False)
    size = (target / WEIGHTS_FILE).stat().st_size
    averaged = f", mean of {len(average) + 1} checkpoints" if average else ""
    print(f"{target}: {written.family}, weights {args.dtype}{averaged}, "
          f"{size / 2**20:.1f} MiB, sha256 {written.sha256}")  # fmt: skip
    return 0


def _sampling(entries: list[str], config: dict, *, judged: bool) -> dict:
    """--sampling NAME=VALUE entries -> {name: number}, checked against the model's family;
    a GAN's best_of above 1 needs a critic (`judged`): it has no likelihood to judge by."""
    import json

    from pixloom.errors import InvalidValue
    from pixloom.families import GAN_FAMILIES
    from pixloom.pipelines.text_to_image import sampling_defaults

    parsed = {}
    for entry in entries:
        name, _, text = entry.partition("=")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = None
        if not name or not isinstance(value, (int, float)) or isinstance(value, bool):
            raise InvalidValue("sampling", entry, "NAME=NUMBER, e.g. temperature=0.5")
        parsed[name] = value
    merged = {**(config.get("sampling") or {}), **parsed}
    sampling_defaults({"sampling": merged}, config["family"])
    best_of = merged.get("best_of", 1)
    if best_of > 1 and config["family"] in GAN_FAMILIES and not judged:
        raise InvalidValue("sampling", f"best_of={best_of}",
                           f"best_of=1 for a {config['family']} model without a critic, or add "
                           "--critic CRITIC: a GAN has no likelihood to judge its drafts by")  # fmt: skip
    return parsed
