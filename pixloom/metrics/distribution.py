"""Feature-space distances between a real and a generated image set: FID, KID and IS.

Every function takes features or class probabilities already extracted by a
`FeatureExtractor` (pixloom.metrics.features); none of them runs a network. Statistics
are accumulated in float64 because FID subtracts large, nearly equal traces.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from pixloom.errors import require

# An imaginary part of sqrtm(sigma1 @ sigma2) above this (relative to its real part) means
# the covariances are badly conditioned (too few samples for the feature dimension).
IMAGINARY_WARN_RATIO = 1e-3


@dataclass(frozen=True)
class MeanStd:
    """A figure averaged over subsets or splits, with its standard deviation."""

    mean: float
    std: float


def _as_float64_matrix(values, field: str) -> np.ndarray:
    """Return values as a float64 [N, D] array, refusing other shapes and non-finite entries."""
    if isinstance(values, torch.Tensor):
        values = values.detach().to("cpu", torch.float64).numpy()
    array = np.asarray(values, dtype=np.float64)
    require(array.ndim == 2, field, tuple(array.shape), "a 2-D array [N, D]")
    require(bool(np.isfinite(array).all()), field, "non-finite entries", "finite values only")
    return array


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and covariance [D, D] (unbiased, float64) of features [N, D]."""
    array = _as_float64_matrix(features, "features")
    require(array.shape[0] >= 2, "features", tuple(array.shape), "at least 2 samples [N >= 2, D]")
    return array.mean(axis=0), np.cov(array, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, *, eps: float = 1e-6) -> float:
    """Frechet distance between Gaussians N(mu1, sigma1) and N(mu2, sigma2) (Dowson & Landau 1982).

    d^2 = |mu1 - mu2|^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)), the FID of
    Heusel et al. 2017 when the statistics come from Inception pool3 features.
    """
    from scipy import linalg  # the `eval` extra; imported only when a distance is computed

    mu1, mu2 = (
        np.atleast_1d(np.asarray(mu1, np.float64)),
        np.atleast_1d(np.asarray(mu2, np.float64)),
    )
    sigma1, sigma2 = (
        np.atleast_2d(np.asarray(sigma1, np.float64)),
        np.atleast_2d(np.asarray(sigma2, np.float64)),
    )
    require(mu1.shape == mu2.shape, "mu2", mu2.shape, f"the same shape as mu1 {mu1.shape}")
    dim = mu1.shape[0]
    for field, sigma in (("sigma1", sigma1), ("sigma2", sigma2)):
        require(
            sigma.shape == (dim, dim), field, sigma.shape, f"a square covariance ({dim}, {dim})"
        )
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        # Singular product: regularize both covariances, as in Heusel et al.'s reference code.
        offset = np.eye(dim) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        imaginary = np.abs(covmean.imag).max()
        if imaginary > IMAGINARY_WARN_RATIO * max(np.abs(covmean.real).max(), 1e-12):
            warnings.warn(
                f"FID: sqrtm(sigma1 @ sigma2) has an imaginary part of {imaginary:.3g}; the "
                "covariances are ill-conditioned (use more samples than feature dimensions)",
                RuntimeWarning,
                stacklevel=2,
            )
        covmean = covmean.real
    distance = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean)
    return float(distance)


def frechet_inception_distance(real_features, generated_features) -> float:
    """FID between two feature sets [N, D] and [M, D] (Heusel et al. 2017)."""
    mu1, sigma1 = feature_statistics(real_features)
    mu2, sigma2 = feature_statistics(generated_features)
    return frechet_distance(mu1, sigma1, mu2, sigma2)


def _polynomial_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with the kernel k(a, b) = (a.b / d + 1)^3 between x [m, d] and y [m, d]."""
    m, dim = x.shape
    k_xx = (x @ x.T / dim + 1.0) ** 3  # [m, m]
    k_yy = (y @ y.T / dim + 1.0) ** 3
    k_xy = (x @ y.T / dim + 1.0) ** 3
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def kernel_inception_distance(
    real_features,
    generated_features,
    *,
    subset_size: int = 1000,
    num_subsets: int = 100,
    seed: int = 0,
) -> MeanStd:
    """KID: unbiased MMD^2 with a cubic polynomial kernel over random subsets (Binkowski et al. 2018).

    Args:
        subset_size: samples per subset, drawn without replacement from each set; must not
            exceed either set's size (never silently shrunk).
        num_subsets: number of subsets; the result is their mean and standard deviation.
        seed: seeds the subset draws (a private generator; the global RNG is untouched).
    """
    real = _as_float64_matrix(real_features, "real_features")
    fake = _as_float64_matrix(generated_features, "generated_features")
    require(
        real.shape[1] == fake.shape[1],
        "generated_features",
        tuple(fake.shape),
        f"the same feature dimension as real_features ({real.shape[1]})",
    )
    smallest = min(real.shape[0], fake.shape[0])
    require(
        2 <= subset_size <= smallest,
        "subset_size",
        subset_size,
        f"an integer in [2, {smallest}] (the smaller set's size)",
    )
    require(num_subsets >= 1, "num_subsets", num_subsets, "an integer >= 1")
    rng = np.random.default_rng(seed)
    scores = np.empty(num_subsets)
    for i in range(num_subsets):
        x = real[rng.choice(real.shape[0], subset_size, replace=False)]
        y = fake[rng.choice(fake.shape[0], subset_size, replace=False)]
        scores[i] = _polynomial_mmd2(x, y)
    return MeanStd(float(scores.mean()), float(scores.std()))


def inception_score(probabilities, *, splits: int = 10) -> MeanStd:
    """Inception Score exp(E_x KL(p(y|x) || p(y))) over `splits` splits (Salimans et al. 2016).

    Args:
        probabilities: class probabilities [N, C] (rows sum to 1), e.g. softmax outputs.
        splits: the samples are cut into this many equal consecutive parts; the score is
            the mean and standard deviation over parts.
    """
    probs = _as_float64_matrix(probabilities, "probabilities")
    require(bool((probs >= 0).all()), "probabilities", "negative entries", "values in [0, 1]")
    row_sums = probs.sum(axis=1)
    require(
        bool(np.allclose(row_sums, 1.0, atol=1e-3)),
        "probabilities",
        f"row sums from {row_sums.min():.4g} to {row_sums.max():.4g}",
        "rows that sum to 1 (pass softmax outputs, not logits)",
    )
    require(
        1 <= splits <= probs.shape[0],
        "splits",
        splits,
        f"an integer in [1, {probs.shape[0]}] (the number of samples)",
    )
    scores = []
    for part in np.array_split(probs, splits):
        marginal = part.mean(axis=0, keepdims=True)  # p(y), [1, C]
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(part > 0, part * (np.log(part) - np.log(marginal)), 0.0)
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return MeanStd(float(np.mean(scores)), float(np.std(scores)))
