"""A trained pixloom classifier as an oracle: features for FID/KID/PR, probabilities for IS."""

from __future__ import annotations

import torch

from pixloom.metrics.features import prepare_images
from pixloom.models.classifier import Classifier


class ClassifierOracle:
    """Wraps pixloom.models.classifier (e.g. the digits oracle); implements ClassifierExtractor."""

    def __init__(self, network: Classifier, *, name: str = "classifier", sha256: str = ""):
        self.network = network.eval()
        self.name = f"{name}-features"
        self.sha256 = sha256
        self.resolution = network.config.resolution

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        return prepare_images(images, self.network, self.resolution)

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled penultimate features [B, D]."""
        return self.network.features(self._prepare(images)).float().cpu()

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities [B, C]."""
        return self.network(self._prepare(images)).float().softmax(-1).cpu()

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Predicted class indices [B]."""
        return self.network(self._prepare(images)).argmax(-1).cpu()
