"""How far all-MiniLM-L6-v2 alone maps the paraphrase suite's unseen words to training words.

    python -m benchmarks.paraphrase_grounding [--encoder hf:PATH]

The paraphrase suite (pixloom/suites/paraphrase.jsonl) names colours and shapes with words
no training caption contains ("a crimson lozenge"). A generator can only draw them if
something turns them into the words it was trained on, and the issue asks that this come
from what a language model knows, not from a synonym table. This script measures three
such routes with MiniLM (or, with `--encoder hf:PATH`, another local BERT-like sentence
encoder), each scored against the suite's own answers:

1. prompt retrieval: the nearest of the 48 canonical captions "a {colour} {shape}" to the
   whole prompt, by pooled sentence embedding;
2. word matching: each paraphrase word against the 8 colour (or 6 shape) words, in the
   templates below and with MiniLM's static input embeddings, with and without the
   hubness correction CSLS (Conneau et al. 2018; k neighbours among MiniLM's vocabulary);
3. substitution: every unseen word of a prompt replaced by the training word (or nothing)
   that keeps the prompt's sentence embedding closest, two passes of coordinate ascent.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from benchmarks.table import markdown_table

TEMPLATES = ("{w}", "the colour {w}", "something {w}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="minilm", help="minilm or hf:PATH (default: minilm)")
    args = parser.parse_args()
    from pixloom.data.shapes.captions import FUNCTION_WORDS, plural
    from pixloom.data.shapes.suites import COLOR_PARAPHRASES, SHAPE_PARAPHRASES, suite_path
    from pixloom.data.shapes.world import COLORS, SHAPES
    from pixloom.errors import InvalidValue
    from pixloom.text.registry import load_text_encoder

    start = time.perf_counter()
    if args.encoder == "builtin":
        parser.error("--encoder: builtin knows only the training words; give minilm or hf:PATH")
    try:
        encoder = load_text_encoder(args.encoder)
    except InvalidValue as error:
        parser.error(f"--encoder: {error}")
    colours, shapes = list(COLORS), list(SHAPES)
    records = [json.loads(line) for line in suite_path("paraphrase").read_text().splitlines()]
    answers = [(r["objects"][0]["color"], r["objects"][0]["shape"]) for r in records]

    def embed(texts: list[str]) -> torch.Tensor:
        return torch.cat(
            [encoder.encode(texts[i : i + 512]).pooled for i in range(0, len(texts), 512)]
        )

    rows = []
    # 1. prompt retrieval among the canonical single-object captions
    pairs = [(c, s) for c in colours for s in shapes]
    captions = embed([f"a {c} {s}" for c, s in pairs])
    chosen = (embed([r["prompt"] for r in records]) @ captions.T).argmax(1).tolist()
    picked = [pairs[i] for i in chosen]
    rows.append(_row("prompt retrieval, 48 captions", picked, answers))

    # 2. word matching, plain and CSLS
    vocabulary = [w for w in encoder.tokenizer.vocab if w.isalpha() and len(w) >= 3]
    table = encoder.model.embeddings.word_embeddings.weight.detach()

    def static(words: list[str]) -> torch.Tensor:
        ids = [encoder.tokenizer(w, add_special_tokens=False)["input_ids"] for w in words]
        return F.normalize(torch.stack([table[i].mean(0) for i in ids]), dim=-1)

    for template in (*TEMPLATES, None):

        def vectors(words: list[str], template=template) -> torch.Tensor:
            return (
                static(words) if template is None else embed([template.format(w=w) for w in words])
            )

        reference = vectors(vocabulary)
        for k in (0, 10):
            scores = []
            for paraphrases, canon in ((COLOR_PARAPHRASES, colours), (SHAPE_PARAPHRASES, shapes)):
                words = [w for key in canon for w in paraphrases[key]]
                truth = [key for key in canon for _ in paraphrases[key]]
                a, b = vectors(words), vectors(canon)
                score = 2 * a @ b.T
                if k:
                    score -= (a @ reference.T).topk(k, dim=1).values.mean(1)[:, None]
                    score -= (b @ reference.T).topk(k, dim=1).values.mean(1)[None]
                right = sum(canon[i] == t for i, t in zip(score.argmax(1).tolist(), truth))
                scores.append(f"{right}/{len(words)}")
            name = "static input embeddings" if template is None else f'"{template}"'
            route = f"word matching, {name}" + (f", CSLS k={k}" if k else "")
            rows.append({"route": route, "colour right": scores[0], "shape right": scores[1],
                         "both right": ""})  # fmt: skip

    # 3. substitution of unseen words inside the prompt
    content = colours + shapes + [plural(s) for s in shapes]
    known = set(content) | set(FUNCTION_WORDS) | {"small", "large", "top", "bottom", "left",
                                                   "right", "center", "above", "below"}  # fmt: skip
    options = [[w] for w in content] + [[]]
    singular = {plural(s): s for s in shapes} | {s: s for s in shapes}
    picked = []
    for record in records:
        words = record["prompt"].split()
        target = embed([record["prompt"]])[0]
        choice = {i: [w] for i, w in enumerate(words)}
        for _ in range(2):
            for i in [i for i, w in enumerate(words) if w not in known]:
                trials = [" ".join(sum(({**choice, i: o}[j] for j in range(len(words))), []))
                          for o in options]  # fmt: skip
                choice[i] = options[int((embed(trials) @ target).argmax())]
        out = sum((choice[j] for j in range(len(words))), [])
        picked.append((next((w for w in out if w in colours), None),
                       next((singular[w] for w in out if w in singular), None)))  # fmt: skip
    rows.append(_row("substitution in the prompt", picked, answers))
    print(markdown_table(rows))
    print(f"\n{len(records)} prompts; chance: colour 1/8, shape 1/6, both 1/48. "
          f"{time.perf_counter() - start:.0f} s")  # fmt: skip


def _row(name: str, picked: list, answers: list) -> dict[str, str]:
    colour = sum(p[0] == a[0] for p, a in zip(picked, answers))
    shape = sum(p[1] == a[1] for p, a in zip(picked, answers))
    both = sum(p == a for p, a in zip(picked, answers))
    n = len(answers)
    return {"route": name, "colour right": f"{colour}/{n}", "shape right": f"{shape}/{n}",
            "both right": f"{both}/{n}"}  # fmt: skip


if __name__ == "__main__":
    main()
