"""How far a causal language model's own completions map the paraphrase suite's unseen words.

    python -m benchmarks.paraphrase_llm --llm PATH

`benchmarks.paraphrase_grounding` measures what the sentence encoders know. This script
asks a generative language model instead, as a prompt rewriter in front of the generator
would: each paraphrase word ("crimson", "lozenge") goes into a cloze sentence ("The colour
crimson is a kind of") and the model's log-likelihood of each training word ("red",
"blue", ...) as the next words decides. Small models favour some answers whatever the
question, so each template is also scored with contextual calibration (Zhao et al. 2021):
the scores for the content-free word "N/A" are subtracted. The last rows sum the
calibrated log-probabilities of all templates. Nothing here is a synonym table: the
candidates are the world's own colour and shape words, and the templates are the same for
every word.

PATH is a local Hugging Face causal-LM directory, or a `.gguf` file (transformers then
needs the `gguf` and `accelerate` packages). Loading is offline.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from benchmarks.table import markdown_table

CONTENT_FREE = "N/A"
TEMPLATES = {
    "colour": (
        "The colour {w} is a kind of",
        "In simple words, {w} means",
        "Something {w} is mostly",
        "{w} is a shade of",
    ),
    "shape": (
        "A {w} is shaped like a",
        "A {w} looks like a",
        "In simple words, a {w} is a",
        "The shape of a {w} is a",
    ),
}


def load_causal_lm(path: str):
    """(model, tokenizer) from a local directory or .gguf file, fp32, eval mode, offline."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where = Path(path).expanduser()
    if not where.exists():
        raise FileNotFoundError(f"{where} does not exist (a causal-LM directory or .gguf)")
    extra = {"gguf_file": where.name} if where.suffix == ".gguf" else {}
    root = where.parent if extra else where
    tokenizer = AutoTokenizer.from_pretrained(root, local_files_only=True, **extra)
    model = AutoModelForCausalLM.from_pretrained(
        root, local_files_only=True, dtype=torch.float32, **extra
    )
    return model.eval(), tokenizer


@torch.no_grad()
def completion_scores(model, tokenizer, prefix: str, candidates: list[str]) -> torch.Tensor:
    """Log-likelihood of " candidate" after `prefix`, summed over its tokens: (len(candidates),).

    All candidates run in one batch, padded on the right: a causal model's real positions
    never attend to the padding after them."""
    head = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    start, rows = len(head), []
    for candidate in candidates:
        ids = tokenizer(f"{prefix} {candidate}", add_special_tokens=False)["input_ids"]
        if ids[:start] != head or len(ids) == start:
            raise ValueError(f"the tokenizer splits {prefix!r} differently before {candidate!r}")
        rows.append(ids)
    width = max(map(len, rows))
    batch = torch.tensor([ids + [0] * (width - len(ids)) for ids in rows])
    logp = model(batch).logits[:, :-1].log_softmax(-1)
    return torch.stack([
        logp[i, torch.arange(start - 1, len(ids) - 1), batch[i, start : len(ids)]].sum()
        for i, ids in enumerate(rows)
    ])  # fmt: skip


def completion_table(model, tokenizer, words: list[str], candidates: list[str],
                     template: str) -> torch.Tensor:  # fmt: skip
    """(len(words), len(candidates)) log-likelihoods of each candidate after the template
    filled with each word."""
    rows = [completion_scores(model, tokenizer, template.format(w=w), candidates) for w in words]
    return torch.stack(rows)


def answers(table: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
    """Log-probabilities over the candidates, one row a word; with the content-free word's
    row `prior`, that row is subtracted first (contextual calibration)."""
    return (table if prior is None else table - prior).log_softmax(-1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llm", required=True, help="a causal-LM directory or .gguf file")
    args = parser.parse_args(argv)
    from pixloom.data.shapes.suites import COLOR_PARAPHRASES, SHAPE_PARAPHRASES
    from pixloom.data.shapes.world import COLORS, SHAPES

    start = time.perf_counter()
    try:
        model, tokenizer = load_causal_lm(args.llm)
    except (FileNotFoundError, ImportError, OSError, ValueError) as error:
        parser.error(f"--llm: {error}")
    groups = {
        "colour": (COLOR_PARAPHRASES, list(COLORS)),
        "shape": (SHAPE_PARAPHRASES, list(SHAPES)),
    }
    rows = []
    for kind, (paraphrases, canon) in groups.items():
        words = [w for key in canon for w in paraphrases[key]]
        truth = torch.tensor([canon.index(key) for key in canon for _ in paraphrases[key]])
        calibrated = []
        for template in TEMPLATES[kind]:
            table = completion_table(model, tokenizer, [*words, CONTENT_FREE], canon, template)
            calibrated.append(answers(table[:-1], table[-1]))
            for calibrate, scores in ((False, answers(table[:-1])), (True, calibrated[-1])):
                right = int((scores.argmax(1) == truth).sum())
                rows.append({"words": kind, "template": f'"{template}"',
                             "calibrated": "yes" if calibrate else "no",
                             "right": f"{right}/{len(words)}"})  # fmt: skip
        right = int((torch.stack(calibrated).sum(0).argmax(1) == truth).sum())
        rows.append({"words": kind, "template": f"the {len(calibrated)} summed",
                     "calibrated": "yes", "right": f"{right}/{len(words)}"})  # fmt: skip
    print(markdown_table(rows))
    print(f"\n{args.llm}; chance: colour 1/{len(COLORS)}, shape 1/{len(SHAPES)}. "
          f"{time.perf_counter() - start:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
