"""A trained pixloom classifier as an oracle: features for FID/KID/PR, probabilities for IS."""

from __future__ import annotations

import torch

from pixloom.metrics.features import NetworkFeatures
from pixloom.models.classifier import Classifier


class ClassifierOracle(NetworkFeatures):
    """Wraps pixloom.models.classifier (e.g. the digits oracle); implements ClassifierExtractor."""

    def __init__(self, network: Classifier, *, name: str = "classifier", sha256: str = ""):
        super().__init__(network, name=name, sha256=sha256)

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities [B, C]."""
        return self.network(self._prepare(images)).float().softmax(-1).cpu()

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Predicted class indices [B]."""
        return self.network(self._prepare(images)).argmax(-1).cpu()
