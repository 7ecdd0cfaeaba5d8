"""Best-of-K judges on the same drafts: the model's likelihood against its critic.

    python -m benchmarks.judges --model shapes-maskgit --suites binding relation count
    python -m benchmarks.judges --model shapes-ar --images-per-prompt 4

Draws K drafts per image once (`draw_batch`, best_of=K), decodes every draft and lets the
shapes oracle say which are correct. Then it scores the draft each judge keeps:
- draft 0: what best_of=1 draws;
- likelihood: the model's own score of its tokens;
- critic: the critic the model file holds;
- any correct: an oracle-picked ceiling.
--critics adds a column for each further critic (a checkpoint, run or model holding one),
scoring the same decoded drafts, and a "critics summed" column (each critic's logits
standardized over the drafts of an image, then added).
The drafts and their likelihoods are read where the sampler keeps its best draft
(pixloom.sampling.tokens._keep_best), so both judges see exactly the same drafts.
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.table import markdown_table


def _kept(correct: torch.Tensor, scores: torch.Tensor) -> float:
    """Share of images (rows of `correct`, one column per draft) whose highest-scored draft
    is correct."""
    best = scores.view(correct.shape).argmax(1)
    return correct[torch.arange(correct.shape[0]), best].mean().item()


def _standardized(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Logits (images * k,) standardized over each image's k drafts."""
    rows = logits.view(-1, k)
    return (
        (rows - rows.mean(1, keepdim=True)) / rows.std(1, keepdim=True).clamp_min(1e-6)
    ).flatten()


def main() -> None:
    """Print one row per suite."""
    import pixloom
    import pixloom.sampling.tokens as tokens_module
    from pixloom.errors import require
    from pixloom.evaluation.alignment import load_prompts, score_images
    from pixloom.metrics.alignment import CORRECT
    from pixloom.metrics.oracles import load_oracle
    from pixloom.pipelines.text_to_image import tensor_to_images

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="shapes-maskgit")
    parser.add_argument("--suites", nargs="+", default=["single", "binding", "relation", "count"])
    parser.add_argument("--prompts", type=int, default=64, help="first N prompts of each suite")
    parser.add_argument("--images-per-prompt", type=int, default=2)
    parser.add_argument("--best-of", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--critics", nargs="*", default=[], help="more critics to compare")
    args = parser.parse_args()
    from benchmarks.critic_accuracy import load_critic

    pipe = pixloom.load(args.model)
    require(getattr(pipe, "draw_batch", None) is not None and pipe.model.critic is not None,
            "model", args.model, "a token model holding a critic (pixloom export --critic)")  # fmt: skip
    oracle, k, side = load_oracle("shapes-oracle"), args.best_of, pipe.model.config.grid_size
    critics = {"critic": pipe.model.critic, **{path: load_critic(path) for path in args.critics}}
    seen = {}
    keep_best = tokens_module._keep_best

    def record(drafts, scores, best_of, judge=None, side=0):
        seen.update(drafts=drafts.clone(), likelihood=scores.clone())
        return keep_best(drafts, scores, best_of, judge, side)

    tokens_module._keep_best = record
    rows = []
    for suite in args.suites:
        records = load_prompts(suite)[: args.prompts]
        slots = range(args.seed, args.seed + args.images_per_prompt)
        prompts = [r["prompt"] for r in records for _ in slots]
        pipe.draw_batch(prompts, [s for _ in records for s in slots], best_of=k, judge="likelihood")
        drafts, likelihood = seen["drafts"], seen["likelihood"]
        draft_prompts = [p for p in prompts for _ in range(k)]
        images, scored = [], {name: [] for name in critics}
        with torch.no_grad():
            for start in range(0, len(draft_prompts), 256):
                part = draft_prompts[start : start + 256]
                decoded = pipe.model.tokenizer.decode(
                    drafts[start : start + 256].view(-1, side, side), part
                ).float()
                images.append(decoded)
                for name, critic in critics.items():
                    scored[name].append(critic(decoded, part))
        pictures = tensor_to_images(torch.cat(images))
        per_record = len(slots) * k
        groups = [pictures[i * per_record : (i + 1) * per_record] for i in range(len(records))]
        verdicts = score_images(oracle, records, groups)
        correct = torch.tensor([[v == CORRECT for v in vs] for vs in verdicts]).view(-1, k).float()
        logits = {name: torch.cat(parts) for name, parts in scored.items()}
        rows.append({"suite": suite, "images": correct.shape[0],
                     "draft 0": correct[:, 0].mean().item(),
                     "likelihood": _kept(correct, likelihood),
                     **{name: _kept(correct, x) for name, x in logits.items()},
                     "any correct": correct.max(1).values.mean().item()})  # fmt: skip
        if len(logits) > 1:
            summed = sum(_standardized(x, k) for x in logits.values())
            rows[-1]["critics summed"] = _kept(correct, summed)
        print(rows[-1], flush=True)
    print(f"model {args.model}, best_of {k}, precision {pipe.precision}")
    print(markdown_table(rows, float_format=".3f"))


if __name__ == "__main__":
    main()
