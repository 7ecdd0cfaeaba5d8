"""The feature-network contract used by FID, KID, IS and precision/recall.

A `FeatureExtractor` maps images [B, 3, H, W] in [-1, 1] to features [B, D]; one that is
also a classifier adds `probabilities(images) -> [B, C]` (needed only by the Inception
Score). The extractor resizes to its own `resolution`; its `name` is written into every
report so a figure always says which network produced it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

import torch

from pixloom.errors import require


@runtime_checkable
class FeatureExtractor(Protocol):
    """Images [B, 3, H, W] in [-1, 1] -> features [B, D]."""

    name: str  # recorded in reports, e.g. "inception-v3-pool3"
    resolution: int  # the square input size the network resizes to

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Embed images [B, 3, H, W] in [-1, 1] -> [B, D]."""
        ...


@runtime_checkable
class ClassifierExtractor(FeatureExtractor, Protocol):
    """A feature extractor that also gives class probabilities (for the Inception Score)."""

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities [B, C] (rows sum to 1) for images [B, 3, H, W] in [-1, 1]."""
        ...


def check_images(images: torch.Tensor, field: str = "images") -> None:
    """Refuse anything but a finite float batch [B, 3, H, W] with values in [-1, 1]."""
    require(
        isinstance(images, torch.Tensor) and images.is_floating_point(),
        field,
        type(images).__name__,
        "a float tensor [B, 3, H, W] in [-1, 1]",
    )
    require(
        images.ndim == 4 and images.shape[1] == 3,
        field,
        tuple(images.shape),
        "shape [B, 3, H, W]",
    )
    low, high = float(images.min()), float(images.max())
    require(
        low >= -1.0 - 1e-4 and high <= 1.0 + 1e-4,
        field,
        f"values in [{low:.4g}, {high:.4g}]",
        "values in [-1, 1] (map [0, 1] images with x * 2 - 1)",
    )


def extract(
    extractor: FeatureExtractor,
    batches: Iterable[torch.Tensor],
    *,
    probabilities: bool = False,
) -> torch.Tensor:
    """Run an extractor over batches of images and concatenate -> [N, D] (or [N, C]) on CPU.

    Args:
        batches: image tensors [B, 3, H, W] in [-1, 1], e.g. from a DataLoader or a sampler.
        probabilities: collect `extractor.probabilities` instead of `features`.
    """
    if probabilities:
        require(
            isinstance(extractor, ClassifierExtractor),
            "extractor",
            getattr(extractor, "name", type(extractor).__name__),
            "a classifier with probabilities() (e.g. the Inception network) for this metric",
        )
    outputs = []
    for batch in batches:
        check_images(batch)
        with torch.no_grad():
            out = extractor.probabilities(batch) if probabilities else extractor.features(batch)
        outputs.append(out.detach().to("cpu", torch.float32))
    require(len(outputs) > 0, "batches", "empty", "at least one batch of images")
    return torch.cat(outputs)


class NetworkFeatures:
    """What pixloom's oracles share: a trained network with `.features()` and `.config.resolution`.

    Inputs of any side are checked, moved to the network's device in fp32 and resized to the
    network's side (bilinear, antialiased when shrinking); `name` goes into every report.
    """

    def __init__(self, network: torch.nn.Module, *, name: str, sha256: str = ""):
        self.network = network.eval()
        self.name = f"{name}-features"
        self.sha256 = sha256
        self.resolution = network.config.resolution

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        from pixloom.data.transforms import resize_square

        check_images(images)
        device = next(self.network.parameters()).device
        return resize_square(images.float().to(device), self.resolution)

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate features [B, D] of the network."""
        return self.network.features(self._prepare(images)).float().cpu()
