"""How well the image-text critic tells a caption from its near misses, on the test split.

    python -m benchmarks.critic_accuracy --critic runs/shapes-critic/model
    python -m benchmarks.critic_accuracy --critic shapes-maskgit   # the critic a model holds

For each test scene (never trained on; held-out colour-shape pairs included) the critic
scores the render against its caption and against each near-miss edit that applies
(pixloom.data.shapes.negatives), and against the next scene's caption. A row is the share of
pairs where the true caption scores higher, per kind of edit; scenes showing a held-out pair
get rows of their own. --reconstruct MODEL first passes each render through MODEL's image
tokenizer (encode, then decode with its caption), so the critic reads what a token model's
drafts look like. A last row reads images, not captions: each relation-suite prompt's
render (4 seeds) against a render of the same objects with the relation reversed, scored
with the prompt, as a best-of-K judge has to tell drafts apart.
"""

from __future__ import annotations

import argparse
import random

import torch

from benchmarks.table import markdown_table


def load_critic(name_or_path: str):
    """A critic checkpoint or run, or the critic inside a token model."""
    from pixloom.errors import require
    from pixloom.models.loading import load_model
    from pixloom.training.checkpointing import resolve_trained

    model, checkpoint = load_model(resolve_trained(name_or_path))
    critic = model if checkpoint.family == "critic" else getattr(model, "critic", None)
    require(critic is not None, "critic", name_or_path, "a critic or a model holding one")
    return critic.eval()


def main() -> None:
    """Print the accuracy table."""
    from pixloom.data.shapes.dataset import ShapesDataset, ShapesOptions
    from pixloom.data.shapes.negatives import EDITS, OPT_IN_EDITS
    from pixloom.data.shapes.world import DEFAULT_HELDOUT_PAIRS, parse_pairs
    from pixloom.text.builtin import split_words

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--critic", default="runs/shapes-critic/model")
    parser.add_argument("--scenes", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--reconstruct", default=None, help="a token model or vq tokenizer")
    args = parser.parse_args()
    critic = load_critic(args.critic)
    tokenizer = None
    if args.reconstruct is not None:
        from pixloom.models.loading import load_image_tokenizer
        from pixloom.training.checkpointing import resolve_trained

        tokenizer = load_image_tokenizer(resolve_trained(args.reconstruct), "--reconstruct")[0]
    data = ShapesDataset("test", critic.config.resolution, ShapesOptions())
    heldout = parse_pairs(list(DEFAULT_HELDOUT_PAIRS), "heldout")
    rng, opt_in_rng = random.Random(0), random.Random(1)  # the first as before opt-in edits
    wins: dict[tuple[str, bool], list[bool]] = {}
    for start in range(0, args.scenes, args.batch):
        indices = range(start, min(start + args.batch, args.scenes))
        items = [data[i] for i in indices]
        shows = [any((o.color, o.shape) in heldout for o in data.scene(i).objects) for i in indices]
        images, captions = (
            torch.stack([item["image"] for item in items]),
            [i["caption"] for i in items],
        )
        rows, texts, kinds = [], [], []
        for row, caption in enumerate(captions):
            words = split_words(caption)
            texts.append(caption), rows.append(row), kinds.append(None)
            (
                texts.append(captions[(row + 1) % len(captions)]),
                rows.append(row),
                kinds.append("other caption"),
            )
            for name, edit in EDITS.items():
                edited = edit(words, opt_in_rng if name in OPT_IN_EDITS else rng)
                if edited is not None and edited != words:
                    texts.append(" ".join(edited)), rows.append(row), kinds.append(name)
        with torch.no_grad():
            if tokenizer is not None:
                images = tokenizer.decode(tokenizer.encode(images).indices, captions)
            tokens = critic.image_tokens(images)
            logits = critic.joint(tokens[torch.tensor(rows)], texts)
        true = {r: float(logit) for r, k, logit in zip(rows, kinds, logits) if k is None}
        for r, kind, logit in zip(rows, kinds, logits):
            if kind is not None:
                wins.setdefault((kind, shows[r]), []).append(true[r] > float(logit))
    table = []
    for (kind, held), results in sorted(wins.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        table.append({"pairs": f"{kind}{' (held-out pair shown)' if held else ''}",
                      "count": len(results), "true caption higher": sum(results) / len(results)})  # fmt: skip
    table.append(_reversed_relations(critic, tokenizer))
    seen = f", reconstructed by {args.reconstruct}'s tokenizer" if tokenizer is not None else ""
    print(f"critic {args.critic}, {args.scenes} test scenes{seen}")
    print(markdown_table(table, columns=["pairs", "count", "true caption higher"]))


def _reversed_relations(critic, tokenizer, seeds: int = 4) -> dict:
    """The row for relation-suite renders against their reversed renders."""
    import copy

    from pixloom.data.transforms import images_to_tensor
    from pixloom.evaluation.alignment import load_prompts, render_record

    opposite = {"left_of": "right_of", "right_of": "left_of", "above": "below", "below": "above"}
    records, right, wrong = load_prompts("relation"), [], []
    for record in records:
        reversed_ = copy.deepcopy(record)
        for relation in reversed_["relations"]:
            relation["type"] = opposite[relation["type"]]
        right += [render_record(record, seed, critic.config.resolution) for seed in range(seeds)]
        wrong += [render_record(reversed_, seed, critic.config.resolution) for seed in range(seeds)]
    prompts = [record["prompt"] for record in records for _ in range(seeds)]
    with torch.no_grad():
        scores = []
        for images in (images_to_tensor(right), images_to_tensor(wrong)):
            if tokenizer is not None:
                images = tokenizer.decode(tokenizer.encode(images).indices, prompts)
            scores.append(critic(images, prompts))
    return {"pairs": "relation suite: its render against the render with the relation reversed",
            "count": len(prompts), "true caption higher": (scores[0] > scores[1]).float().mean().item()}  # fmt: skip


if __name__ == "__main__":
    main()
