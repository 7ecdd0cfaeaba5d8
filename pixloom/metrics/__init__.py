"""Evaluation: FID/KID/IS/precision-recall on features, PSNR/SSIM, the SR protocol, reports.

Imports no generator: every function takes features, probabilities, images or an
upscaling callable, so any model (or none) can be evaluated the same way.
"""

from __future__ import annotations

from pixloom.metrics.distribution import (
    MeanStd,
    feature_statistics,
    frechet_distance,
    frechet_inception_distance,
    inception_score,
    kernel_inception_distance,
)
from pixloom.metrics.features import ClassifierExtractor, FeatureExtractor, extract
from pixloom.metrics.intervals import wilson_interval
from pixloom.metrics.precision_recall import PrecisionRecall, precision_recall
from pixloom.metrics.quality import psnr, rgb_to_y, ssim

__all__ = [
    "ClassifierExtractor",
    "FeatureExtractor",
    "MeanStd",
    "PrecisionRecall",
    "extract",
    "feature_statistics",
    "frechet_distance",
    "frechet_inception_distance",
    "inception_score",
    "kernel_inception_distance",
    "precision_recall",
    "psnr",
    "rgb_to_y",
    "ssim",
    "wilson_interval",
]
