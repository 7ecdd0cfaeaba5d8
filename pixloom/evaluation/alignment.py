"""Text-image alignment on the shapes world (SHAPES.md), with the real-render ceiling."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pixloom.data.shapes.prompts import prompt_record_to_scene
from pixloom.data.shapes.render import render_scene
from pixloom.data.shapes.suites import SUITE_NAMES, read_prompt_file, suite_path
from pixloom.data.transforms import images_to_tensor
from pixloom.errors import DataError, InvalidValue, require
from pixloom.evaluation import RENDERS, Generate, generate_images
from pixloom.io.images import decode_image, read_png_metadata
from pixloom.metrics.alignment import judge_image, summarize_alignment
from pixloom.metrics.report import CategoryScore, EvalReport, Figure, MetricProtocol
from pixloom.progress import progress_bar


@dataclass
class AlignmentRequest:
    """What `pixloom eval alignment` measures."""

    prompts: str = field(
        default="all",
        metadata={"help": f"a suite ({', '.join(SUITE_NAMES)}), 'all', or a .jsonl prompt file"},
    )
    model: str = field(
        default=RENDERS,
        metadata={"help": "generator name or path; 'renders' scores real renders only"},
    )
    images: Path | None = field(
        default=None, metadata={"help": "score PNGs generated earlier (prompt read from metadata)"}
    )
    images_per_prompt: int = field(
        default=4, metadata={"help": "images per prompt; image i uses seed + i"}
    )
    seed: int = field(default=0, metadata={"help": "first seed"})
    tokenizer: str | None = field(
        default=None,
        metadata={
            "help": "also score the real renders encoded and decoded by this image tokenizer "
            "(vq, or a token model's own): the ceiling of models that write its tokens"
        },
    )
    resolution: int = field(default=32, metadata={"help": "side of the real renders"})
    oracle: str = field(default="shapes-oracle", metadata={"help": "scene parser name or path"})
    out: Path | None = field(
        default=None, metadata={"help": "report.json to write (an .html is written beside it)"}
    )

    def __post_init__(self):
        require(
            1 <= self.images_per_prompt <= 1000,
            "images_per_prompt",
            self.images_per_prompt,
            "1 to 1000",
        )
        require(0 <= self.seed < 2**63, "seed", self.seed, "0 to 2**63-1")
        require(16 <= self.resolution <= 256, "resolution", self.resolution, "16 to 256")


def load_prompts(prompts: str) -> list[dict]:
    """Records of a suite name, 'all' suites, or a prompt file path."""
    if prompts == "all":
        return [record for name in SUITE_NAMES for record in read_prompt_file(suite_path(name))]
    if prompts in SUITE_NAMES:
        return read_prompt_file(suite_path(prompts))
    if not Path(prompts).is_file():
        raise InvalidValue(
            "prompts",
            prompts,
            f"'all', a suite ({', '.join(SUITE_NAMES)}) or an existing .jsonl file",
        )
    return read_prompt_file(prompts)


def render_record(record: dict, seed: int, resolution: int) -> Image.Image:
    """A real render satisfying a prompt record (unspecified attributes drawn from seed)."""
    scene = prompt_record_to_scene(record, random.Random(f"render:{seed}:{record['prompt']}"))
    return Image.fromarray((render_scene(scene, resolution) * 255).round().astype(np.uint8))


def score_images(
    oracle, records: list[dict], images: list[list[Image.Image]], batch: int = 128
) -> list[list[str]]:
    """Oracle verdicts (metrics.alignment.judge_image), one list per record."""
    flat = [(r, image) for r, group in enumerate(images) for image in group]
    verdicts: list[list[str]] = [[] for _ in records]
    for start in range(0, len(flat), batch):
        chunk = flat[start : start + batch]
        by_size: dict[tuple, list[int]] = {}
        for i, (_, image) in enumerate(chunk):
            by_size.setdefault(image.size, []).append(i)
        parsed: dict[int, list] = {}
        for indices in by_size.values():
            for i, scene in zip(
                indices, oracle.parse(images_to_tensor([chunk[i][1] for i in indices]))
            ):
                parsed[i] = scene
        for i, (r, _) in enumerate(chunk):
            verdicts[r].append(judge_image(parsed[i], records[r]))
    return verdicts


@torch.no_grad()
def round_trip(
    tokenizer, images: list[list[Image.Image]], prompts: list[str], batch: int = 128
) -> list[list[Image.Image]]:
    """Each image encoded to tokens and decoded again by `tokenizer`, grouped as given;
    group i's prompt is prompts[i] (read by a text-conditioned decoder only)."""
    from pixloom.pipelines.text_to_image import tensor_to_images

    flat = [image for group in images for image in group]
    flat_prompts = [prompt for prompt, group in zip(prompts, images) for _ in group]
    decoded: list[Image.Image] = []
    for start in progress_bar(range(0, len(flat), batch), desc="tokenizer", leave=False):
        pixels = images_to_tensor(flat[start : start + batch])
        codes = tokenizer.encode(pixels).indices
        decoded += tensor_to_images(tokenizer.decode(codes, flat_prompts[start : start + batch]))
    sizes = [len(group) for group in images]
    starts = np.cumsum([0, *sizes])
    return [decoded[begin : begin + size] for begin, size in zip(starts, sizes)]


def images_from_folder(folder: Path, records: list[dict]) -> list[list[Image.Image]]:
    """Group PNGs of `folder` by the prompt in their metadata, in the order of `records`."""
    by_prompt: dict[str, list[Image.Image]] = {record["prompt"]: [] for record in records}
    paths = sorted(folder.glob("*.png"))
    if not paths:
        raise DataError(f"no PNG images in {folder}")
    for path in paths:
        metadata = read_png_metadata(path) or {}
        # `pixloom generate` writes the prompt at the top level; other tools nest a request.
        prompt = metadata.get("prompt") or (metadata.get("request") or {}).get("prompt")
        if prompt in by_prompt:
            by_prompt[prompt].append(decode_image(path))
    missing = [prompt for prompt, group in by_prompt.items() if not group]
    if missing:
        raise DataError(f"{len(missing)} prompts have no image in {folder}, e.g. {missing[0]!r}")
    return [by_prompt[record["prompt"]] for record in records]


def _categories(summary: dict) -> list[CategoryScore]:
    return [
        CategoryScore(name, round(score["accuracy"] * score["images"]), score["images"])
        for name, score in summary["categories"].items()
    ]


@dataclass
class AlignmentOutcome:
    result: dict  # every figure with its protocol (the JSON report's "alignment" part)
    report: EvalReport
    samples: list  # a few images for the HTML page


def evaluate_alignment(
    request: AlignmentRequest, oracle, generate: Generate | None = None
) -> AlignmentOutcome:
    """Score the model's images (or folder images) and real renders of every prompt."""
    records = load_prompts(request.prompts)
    seeds = range(request.seed, request.seed + request.images_per_prompt)
    renders = [
        [render_record(r, s, request.resolution) for s in seeds]
        for r in progress_bar(records, desc="render", leave=False)
    ]
    result = {
        "protocol": {
            "prompts": request.prompts,
            "records": len(records),
            "images_per_prompt": request.images_per_prompt,
            "seeds": f"{seeds.start}-{seeds.stop - 1}",
            "oracle": oracle.name,
            "oracle_sha256": oracle.sha256,
            "rule": "SHAPES.md: exact count, one-to-one attribute matching, relations by centres",
        }
    }
    result["renders"] = summarize_alignment(records, score_images(oracle, records, renders))
    if request.tokenizer is not None:
        from pixloom.models.loading import load_image_tokenizer, resolve_checkpoint

        tokenizer, _, checkpoint = load_image_tokenizer(
            resolve_checkpoint(request.tokenizer), "tokenizer"
        )
        result["protocol"]["tokenizer"] = {"name": request.tokenizer, "sha256": checkpoint.sha256}
        through = round_trip(tokenizer, renders, [record["prompt"] for record in records])
        result["renders_through_tokenizer"] = summarize_alignment(
            records, score_images(oracle, records, through)
        )
    samples = [group[0] for group in renders[:: max(1, len(records) // 24)]]
    if request.images is not None:
        generated = images_from_folder(Path(request.images), records)
        result["model"] = {"images": str(request.images)}
    elif generate is not None:
        per = request.images_per_prompt
        flat = generate_images(
            generate,
            [r["prompt"] for r in records for _ in seeds],
            [s for _ in records for s in seeds],
        )
        generated = [flat[i * per : (i + 1) * per] for i in range(len(records))]
        result["model"] = {"name": request.model}
    else:
        generated = None
    if generated is not None:
        result["generated"] = summarize_alignment(records, score_images(oracle, records, generated))
        samples = [group[0] for group in generated[:: max(1, len(records) // 24)]]
    scored = result.get("generated", result["renders"])
    protocol = MetricProtocol(
        feature_network=oracle.name,
        num_generated=scored["overall"]["images"],
        seeds=result["protocol"]["seeds"],
        details=result["protocol"],
    )
    report = EvalReport(
        title=f"alignment: {request.model if generated is not None else 'real renders'} on {request.prompts}",
        figures=[
            Figure(
                "alignment_overall",
                scored["overall"]["accuracy"],
                protocol,
                interval=tuple(scored["overall"]["ci95"]),
            )
        ],
        categories=_categories(scored),
        model=result.get("model", {"name": RENDERS}),
    )
    report.figures.append(
        Figure(
            "alignment_renders_overall",
            result["renders"]["overall"]["accuracy"],
            protocol,
            interval=tuple(result["renders"]["overall"]["ci95"]),
        )
    )
    if "renders_through_tokenizer" in result:
        overall = result["renders_through_tokenizer"]["overall"]
        report.figures.append(
            Figure(
                "alignment_renders_through_tokenizer_overall",
                overall["accuracy"],
                protocol,
                interval=tuple(overall["ci95"]),
            )
        )
    return AlignmentOutcome(result, report, samples)
