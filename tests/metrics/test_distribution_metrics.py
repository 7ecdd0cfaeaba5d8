"""FID, KID, IS and precision/recall against closed forms and independent computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pixloom.errors import InvalidValue
from pixloom.metrics import (
    feature_statistics,
    frechet_distance,
    frechet_inception_distance,
    inception_score,
    kernel_inception_distance,
    precision_recall,
)
from pixloom.metrics.precision_recall import knn_radii


def _fid_by_eigenvalues(real: np.ndarray, fake: np.ndarray) -> float:
    """Independent FID: tr sqrt(S1 S2) = sum of sqrt of the (real, >= 0) eigenvalues of S1 S2."""
    mu1, mu2 = real.mean(0), fake.mean(0)
    s1, s2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    eigenvalues = np.linalg.eigvals(s1 @ s2).real.clip(min=0)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2) - 2 * np.sqrt(eigenvalues).sum())


def test_fid_matches_eigenvalue_formula():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(300, 16))
    fake = rng.normal(size=(250, 16)) @ rng.normal(size=(16, 16)) * 0.5 + 0.3
    expected = _fid_by_eigenvalues(real, fake)
    assert frechet_inception_distance(real, fake) == pytest.approx(expected, rel=1e-8)
    as_tensors = frechet_inception_distance(torch.from_numpy(real), torch.from_numpy(fake))
    assert as_tensors == pytest.approx(expected, rel=1e-8)


def test_fid_closed_form_for_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    var1, var2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    # For commuting covariances: |mu1 - mu2|^2 + sum (sqrt(var1) - sqrt(var2))^2.
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(var1) - np.sqrt(var2)) ** 2).sum()
    got = frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2))
    assert got == pytest.approx(expected, abs=1e-10)


def test_fid_of_identical_sets_is_zero_and_statistics_are_float64():
    features = np.random.default_rng(1).normal(size=(100, 8)).astype(np.float32)
    mu, sigma = feature_statistics(features)
    assert mu.dtype == np.float64 and sigma.shape == (8, 8)
    assert abs(frechet_inception_distance(features, features)) < 1e-8


def test_fid_warns_on_large_imaginary_part():
    with pytest.warns(RuntimeWarning, match="imaginary"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.diag([1.0, -1.0]))


def test_fid_refuses_bad_inputs():
    with pytest.raises(InvalidValue, match="features"):
        feature_statistics(np.zeros((1, 4)))
    with pytest.raises(InvalidValue, match="mu2"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(InvalidValue, match="finite"):
        feature_statistics(np.array([[0.0, np.nan], [1.0, 2.0]]))


def _mmd2_by_loops(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b/d + 1)^3, written as plain sums over pairs."""
    m, d = x.shape

    def k(a, b):
        return (a @ b / d + 1) ** 3

    same = sum(k(x[i], x[j]) + k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    cross = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return same / (m * (m - 1)) - 2 * cross / (m * m)


def test_kid_matches_pairwise_sums_and_is_near_zero_for_one_distribution():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(20, 5)), rng.normal(size=(20, 5)) + 0.5
    # A subset of the whole set is a permutation of it, and MMD^2 ignores order.
    kid = kernel_inception_distance(x, y, subset_size=20, num_subsets=3)
    assert kid.mean == pytest.approx(_mmd2_by_loops(x, y), rel=1e-9) and kid.std < 1e-12
    same = kernel_inception_distance(
        rng.normal(size=(400, 8)), rng.normal(size=(400, 8)), subset_size=100, num_subsets=20
    )
    shifted = kernel_inception_distance(
        rng.normal(size=(400, 8)), rng.normal(size=(400, 8)) + 1.0, subset_size=100, num_subsets=20
    )
    assert abs(same.mean) < 0.02 and shifted.mean > 0.5


def test_kid_is_seeded_and_refuses_large_subsets():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(50, 4)), rng.normal(size=(60, 4))
    first = kernel_inception_distance(x, y, subset_size=10, num_subsets=5, seed=7)
    assert first == kernel_inception_distance(x, y, subset_size=10, num_subsets=5, seed=7)
    with pytest.raises(InvalidValue, match="subset_size"):
        kernel_inception_distance(x, y, subset_size=51)


def test_inception_score_extremes():
    uniform = np.full((20, 10), 0.1)
    assert inception_score(uniform, splits=2).mean == pytest.approx(1.0)
    confident = np.eye(10)  # each sample certain, classes spread evenly: IS = number of classes
    score = inception_score(confident, splits=1)
    assert score.mean == pytest.approx(10.0) and score.std == 0.0
    with pytest.raises(InvalidValue, match="softmax"):
        inception_score(np.random.default_rng(0).normal(size=(10, 5)) + 5)
    with pytest.raises(InvalidValue, match="splits"):
        inception_score(uniform, splits=21)


def test_precision_recall_identical_disjoint_and_batched():
    features = torch.randn(200, 16, generator=torch.Generator().manual_seed(0))
    assert precision_recall(features, features.clone()).precision == 1.0
    assert precision_recall(features, features.clone()).recall == 1.0
    far = precision_recall(features, features + 100.0)
    assert far.precision == 0.0 and far.recall == 0.0
    half = torch.cat([features[:100], features[100:] + 100.0])
    batched = precision_recall(features, half, k=3, batch_size=7)
    assert batched == precision_recall(features, half, k=3, batch_size=4096)
    assert 0.0 < batched.precision < 1.0


def test_knn_radius_is_distance_to_kth_neighbour():
    points = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    assert knn_radii(points, k=1).tolist() == [1.0, 1.0, 2.0, 4.0]
    assert knn_radii(points, k=2, batch_size=1).tolist() == [3.0, 2.0, 3.0, 6.0]
    with pytest.raises(InvalidValue, match="k="):
        precision_recall(points, points, k=4)
