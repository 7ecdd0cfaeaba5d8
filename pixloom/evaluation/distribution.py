"""FID, KID, Inception Score and precision/recall in an oracle's (or Inception's) space.

Every report carries the real-versus-real floor (train split against test split, same
counts), the sample counts, the feature network and whether EMA weights were used.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from pixloom.data.registry import load_dataset
from pixloom.data.transforms import images_to_tensor
from pixloom.errors import DataError, require
from pixloom.evaluation import RENDERS, Generate, generate_images
from pixloom.io.images import decode_image
from pixloom.metrics.distribution import (
    frechet_inception_distance,
    inception_score,
    kernel_inception_distance,
)
from pixloom.metrics.features import ClassifierExtractor
from pixloom.metrics.intervals import wilson_interval
from pixloom.metrics.precision_recall import precision_recall
from pixloom.metrics.report import EvalReport, Figure, MetricProtocol
from pixloom.progress import progress_bar
from pixloom.text.embedding import class_prompt


@dataclass
class DistributionRequest:
    """What `pixloom eval fid` measures."""

    data: str = field(
        default="shapes", metadata={"help": "reference dataset (shapes, digits, folder:PATH)"}
    )
    model: str = field(
        default=RENDERS,
        metadata={"help": "generator name or path; 'renders' scores the test split"},
    )
    images: Path | None = field(
        default=None, metadata={"help": "score PNGs generated earlier instead of a model"}
    )
    num_images: int | None = field(
        default=None,
        metadata={"short": "-n", "help": "samples per set (default: min(2000, test split size))"},
    )
    prompts: Literal["captions", "labels"] = field(
        default="captions",
        metadata={"help": "what generated image i is asked for: test item i's caption, or "
                          "its class id ('labels', for class-conditional models)"},
    )  # fmt: skip
    seed: int = field(default=0, metadata={"help": "first seed; generated image i uses seed + i"})
    resolution: int = field(default=32, metadata={"help": "image side of the reference data"})
    oracle: str | None = field(
        default=None,
        metadata={"help": "feature network checkpoint (default: the dataset's oracle)"},
    )
    feature_weights: Path | None = field(
        default=None, metadata={"help": "Inception-v3 FID weights file: use Inception features"}
    )
    kid_subset_size: int | None = field(
        default=None, metadata={"help": "KID subset size (default: min(1000, samples / 2))"}
    )
    out: Path | None = field(
        default=None, metadata={"help": "report.json to write (an .html is written beside it)"}
    )

    def __post_init__(self):
        require(
            self.num_images is None or self.num_images >= 10,
            "num_images",
            self.num_images,
            "an integer >= 10",
        )
        require(
            self.kid_subset_size is None or self.kid_subset_size >= 2,
            "kid_subset_size",
            self.kid_subset_size,
            ">= 2",
        )
        require(0 <= self.seed < 2**63, "seed", self.seed, "0 to 2**63-1")
        require(self.prompts in ("captions", "labels"), "prompts", self.prompts,
                "'captions' or 'labels'")  # fmt: skip


def _dataset_batches(dataset, count: int, batch: int = 128) -> Iterator[torch.Tensor]:
    for start in range(0, count, batch):
        yield torch.stack([dataset[i]["image"] for i in range(start, min(count, start + batch))])


def _image_batches(images: list, batch: int = 128) -> Iterator[torch.Tensor]:
    for start in range(0, len(images), batch):
        yield images_to_tensor(images[start : start + batch])


def _features(
    extractor, batches: Iterator[torch.Tensor], desc: str
) -> tuple[torch.Tensor, torch.Tensor | None]:
    features, probabilities = [], []
    for images in progress_bar(batches, desc=desc, leave=False):
        features.append(extractor.features(images))
        if isinstance(extractor, ClassifierExtractor):
            probabilities.append(extractor.probabilities(images))
    return torch.cat(features), (torch.cat(probabilities) if probabilities else None)


def _class_accuracy(
    prefix: str, probabilities, labels, num_classes: int, protocol: MetricProtocol
) -> list[Figure]:
    """Share of images the oracle classifies as the class of their caption's item (Wilson 95%).

    Measured when the oracle is a classifier over the dataset's own classes (digits): for
    generated images it says whether a class- or text-conditional model draws what it was
    asked for; for the test split it is the oracle's own ceiling.
    """
    if probabilities is None or not num_classes or probabilities.shape[1] != num_classes:
        return []
    correct = int((probabilities.argmax(1) == labels).sum())
    interval = wilson_interval(correct, len(labels))
    return [Figure(f"{prefix}class_accuracy", correct / len(labels), protocol, interval=interval)]


def _figures(
    prefix: str, real, fake, probabilities, protocol: MetricProtocol, subset: int
) -> list[Figure]:
    kid = kernel_inception_distance(real, fake, subset_size=subset, num_subsets=50, seed=0)
    pr = precision_recall(real, fake, k=3)
    figures = [
        Figure(f"{prefix}fid", frechet_inception_distance(real, fake), protocol),
        Figure(f"{prefix}kid", kid.mean, protocol, std=kid.std),
        Figure(f"{prefix}precision", pr.precision, protocol),
        Figure(f"{prefix}recall", pr.recall, protocol),
    ]
    if probabilities is not None:
        score = inception_score(probabilities, splits=10)
        figures.append(Figure(f"{prefix}inception_score", score.mean, protocol, std=score.std))
    return figures


def evaluate_distribution(
    request: DistributionRequest, extractor, generate: Generate | None = None
) -> EvalReport:
    """FID/KID/IS/PR of generated (or folder, or test-split) images against the train split."""
    train = load_dataset(request.data, split="train", resolution=request.resolution)
    test = load_dataset(request.data, split="test", resolution=request.resolution)
    require(request.prompts == "captions" or test.info.num_classes > 0, "prompts", "labels",
            f"'captions': {request.data} has no classes")  # fmt: skip
    count = request.num_images or min(2000, len(test))
    for name, dataset in (("train", train), ("test", test)):
        if len(dataset) < count:
            raise DataError(
                f"num_images={count} exceeds the {name} split of {request.data} ({len(dataset)} images); lower -n"
            )
    subset = request.kid_subset_size or min(
        1000, count // 2
    )  # subsets smaller than the set give a spread
    real, _ = _features(extractor, _dataset_batches(train, count), "train features")
    floor, floor_probs = _features(extractor, _dataset_batches(test, count), "test features")
    classes = test.info.num_classes
    labels = torch.tensor([int(test[i]["label"]) for i in range(count)]) if classes else None
    seeds = f"{request.seed}-{request.seed + count - 1}"
    details = {
        "data": request.data,
        "resolution": request.resolution,
        "reference": "train split, first N items",
        "kid_subsets": 50,
    }
    base = {"feature_network": extractor.name, "num_real": count}
    figures = _figures(
        "floor_",
        real,
        floor,
        floor_probs,
        MetricProtocol(**base, num_generated=count, details={**details, "generated": "test split"}),
        subset,
    )
    figures += _class_accuracy("floor_", floor_probs, labels, classes, figures[0].protocol)
    model: dict = {"name": RENDERS}
    if request.images is not None or generate is not None:
        if request.images is not None:
            paths = sorted(Path(request.images).glob("*.png"))[:count]
            if len(paths) < count:
                raise DataError(f"{request.images} holds {len(paths)} PNGs; -n asks for {count}")
            images = [decode_image(path) for path in paths]
            model = {"images": str(request.images)}
        else:
            if request.prompts == "labels":
                prompts = [class_prompt(label) for label in labels]
            else:
                prompts = [test[i]["caption"] for i in range(count)]
            image_seeds = [request.seed + i for i in range(count)]
            images = generate_images(generate, prompts, image_seeds)
            model = {"name": request.model}
        fake, fake_probs = _features(extractor, _image_batches(images), "generated features")
        protocol = MetricProtocol(
            **base,
            num_generated=count,
            ema=True,
            seeds=seeds,
            details={**details, "prompts": f"test-split {request.prompts}"},
        )
        figures += _figures("", real, fake, fake_probs, protocol, subset)
        if request.images is None:  # generated from the test items' captions or labels, in order
            figures += _class_accuracy("", fake_probs, labels, classes, protocol)
    return EvalReport(title=f"distribution metrics on {request.data}", figures=figures, model=model)
