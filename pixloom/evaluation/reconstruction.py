"""`pixloom eval tokenizer`: how well an image tokenizer (family "vq") reconstructs a dataset.

Figures: reconstruction PSNR (dB, mean over images of the per-image PSNR on [0, 1] RGB),
FID of the reconstructions against their own originals in the dataset oracle's feature space
(pixloom.metrics; 0 means the oracle cannot tell them apart), and codebook usage over the
whole set: the fraction of codes used and the perplexity of the code histogram. Where the
oracle parses scenes (the shapes world), also the scene agreement: the fraction of
reconstructions in which it reads the same objects (count, shape, colour, size, grid cell) as
in their originals. A token model's images are decoded by this tokenizer, so its alignment
cannot exceed what the oracle still reads in reconstructions.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pixloom.errors import DataError, require
from pixloom.metrics.report import EvalReport, Figure, MetricProtocol

BATCH = 128  # images per encode/decode and feature batch


@dataclass
class ReconstructionRequest:
    """What `pixloom eval tokenizer` measures."""

    model: str = field(
        metadata={"help": "vq tokenizer, or a token model (its tokenizer): name or directory"}
    )
    data: str = field(default="shapes", metadata={"help": "dataset spec: shapes, digits, ..."})
    split: str = field(default="test", metadata={"help": "dataset split: train or test"})
    count: int | None = field(
        default=None,
        metadata={"short": "-n", "help": "images measured (default: min(2000, split size))"},
    )
    resolution: int | None = field(
        default=None, metadata={"help": "image side (default: the tokenizer's resolution)"}
    )
    oracle: str | None = field(
        default=None, metadata={"help": "feature network for FID (default: the dataset's oracle)"}
    )
    out: Path | None = field(
        default=None, metadata={"help": "report.json to write (an .html is written beside it)"}
    )
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda or cuda:N"})

    def __post_init__(self):
        require(self.split in ("train", "test"), "split", self.split, "train or test")
        require(
            self.count is None or self.count >= 2, "count", self.count, "an integer >= 2 or null"
        )
        require(
            self.resolution is None or self.resolution >= 4,
            "resolution",
            self.resolution,
            "an integer >= 4 or null (the tokenizer's own)",
        )


def _batches(dataset, count: int) -> Iterator[tuple[torch.Tensor, list[str] | None]]:
    """(B, 3, H, W) batches in [-1, 1] of the first `count` items, with their captions
    (None for a dataset without)."""
    for start in range(0, count, BATCH):
        items = [dataset[i] for i in range(start, min(count, start + BATCH))]
        captions = [item["caption"] for item in items] if "caption" in items[0] else None
        yield torch.stack([item["image"] for item in items]), captions


def _load_tokenizer(request: ReconstructionRequest, device: torch.device):
    from pixloom.models.loading import load_image_tokenizer, resolve_checkpoint

    tokenizer, _, checkpoint = load_image_tokenizer(resolve_checkpoint(request.model), "model")
    return tokenizer.to(device), checkpoint


def _scene(objects) -> list[tuple[str, ...]]:
    """A parsed scene as a sorted list of its objects' attributes (centres left out)."""
    return sorted((o.shape, o.color, o.size, o.position) for o in objects)


@torch.no_grad()
def _reconstruct_all(tokenizer, dataset, count: int, extractor, device: torch.device) -> dict:
    """Per-image PSNRs, oracle features of originals and reconstructions, all indices."""
    from pixloom.metrics.quality import psnr

    psnrs, real, fake, indices, agree = [], [], [], [], []
    for originals, captions in _batches(dataset, count):
        tokens = tokenizer.encode(originals.to(device)).indices  # (B, h, w)
        # clamped to [-1, 1]; a text-conditioned decoder reads the captions
        reconstructions = tokenizer.decode(tokens, captions).float().cpu()
        indices.append(tokens.cpu())
        for reference, test in zip(originals, reconstructions):
            # (3, H, W) in [-1, 1] -> (H, W, 3) in [0, 1]
            psnrs.append(
                psnr(
                    ((reference + 1) / 2).permute(1, 2, 0).double().numpy(),
                    ((test + 1) / 2).permute(1, 2, 0).double().numpy(),
                )
            )
        real.append(extractor.features(originals))
        fake.append(extractor.features(reconstructions))
        if hasattr(extractor, "parse"):
            pairs = zip(extractor.parse(originals), extractor.parse(reconstructions))
            agree += [_scene(a) == _scene(b) for a, b in pairs]
    return {
        "agree": agree,
        "psnr": psnrs,
        "real": torch.cat(real),
        "fake": torch.cat(fake),
        "indices": torch.cat(indices),
    }


def evaluate_reconstruction(request: ReconstructionRequest) -> tuple[EvalReport, dict]:
    """PSNR, FID (oracle features) and codebook usage of a tokenizer on a dataset split."""
    from pixloom.data.registry import load_dataset
    from pixloom.devices import resolve_device
    from pixloom.metrics.distribution import frechet_inception_distance
    from pixloom.metrics.intervals import wilson_interval
    from pixloom.metrics.oracles import load_oracle, oracle_name_for
    from pixloom.models.quantizers import code_statistics

    device = resolve_device(request.device)
    tokenizer, checkpoint = _load_tokenizer(request, device)
    config = tokenizer.config
    resolution = request.resolution or config.resolution
    require(
        resolution % config.downsample == 0,
        "resolution",
        resolution,
        f"a multiple of the tokenizer's downsample={config.downsample}",
    )
    dataset = load_dataset(request.data, split=request.split, resolution=resolution)
    count = request.count or min(2000, len(dataset))
    if count > len(dataset):
        raise DataError(
            f"count={count} exceeds the {request.split} split of {request.data} "
            f"({len(dataset)} images); lower -n"
        )
    extractor = load_oracle(request.oracle or oracle_name_for(request.data))
    measured = _reconstruct_all(tokenizer, dataset, count, extractor, device)
    usage, perplexity = code_statistics(measured["indices"], tokenizer.codebook_size)
    finite = [value for value in measured["psnr"] if math.isfinite(value)]
    grid = measured["indices"].shape[-1]
    result = {
        "psnr": sum(finite) / len(finite) if finite else math.inf,
        "fid": frechet_inception_distance(measured["real"], measured["fake"]),
        "codebook_usage": usage,
        "perplexity": perplexity,
        "count": count,
        "identical_images": len(measured["psnr"]) - len(finite),  # PSNR inf, left out
        "tokens_per_image": grid * grid,
        "codebook_size": tokenizer.codebook_size,
        "bits_per_image": grid * grid * math.log2(tokenizer.codebook_size),
    }
    agree = measured["agree"]
    if agree:
        result["scene_agreement"] = sum(agree) / len(agree)
        result["scene_agreement_ci95"] = list(wilson_interval(sum(agree), len(agree)))
    details = {"data": request.data, "split": request.split, "resolution": resolution}
    pixel = MetricProtocol(num_real=count, ema=True, details={**details, "psnr": "mean per image"})
    features = MetricProtocol(
        feature_network=extractor.name,
        num_real=count,
        num_generated=count,
        ema=True,
        details={**details, "reference": "the originals of the reconstructions"},
    )
    figures = [
        Figure("psnr", result["psnr"], pixel, unit="dB"),
        Figure("fid", result["fid"], features),
        Figure("codebook_usage", usage, pixel),
        Figure("perplexity", perplexity, pixel),
    ]
    if agree:
        interval = tuple(result["scene_agreement_ci95"])
        figures.append(Figure("scene_agreement", result["scene_agreement"], features,
                              interval=interval))  # fmt: skip
    report = EvalReport(
        title=f"tokenizer reconstruction on {request.data} ({request.split})",
        figures=figures,
        model={"name": request.model, "family": checkpoint.family, "sha256": checkpoint.sha256},
    )
    return report, result
