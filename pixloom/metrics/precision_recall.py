"""Improved precision and recall of a generative model with k-NN manifolds.

Kynkaanniemi et al. 2019, "Improved Precision and Recall Metric for Assessing Generative
Models": each set's manifold is the union of balls around its samples whose radius is the
distance to the sample's k-th nearest neighbour in the same set. Precision is the share of
generated samples inside the real manifold; recall the share of real samples inside the
generated one. Distances are computed in row batches with torch.cdist, so 10k x 10k sets
need only batch_size x N distances in memory at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pixloom.errors import require


@dataclass(frozen=True)
class PrecisionRecall:
    """Improved precision and recall, both in [0, 1]."""

    precision: float
    recall: float


def _as_features(values, field: str) -> torch.Tensor:
    """Return values as a float32 [N, D] tensor, refusing other shapes and non-finite entries."""
    tensor = torch.as_tensor(values).detach().to("cpu", torch.float32)
    require(tensor.ndim == 2, field, tuple(tensor.shape), "a 2-D array [N, D]")
    require(bool(torch.isfinite(tensor).all()), field, "non-finite entries", "finite values only")
    return tensor


def knn_radii(features: torch.Tensor, *, k: int = 3, batch_size: int = 1024) -> torch.Tensor:
    """Distance from each sample [N, D] to its k-th nearest other sample in the same set -> [N]."""
    radii = []
    for start in range(0, features.shape[0], batch_size):
        distances = torch.cdist(features[start : start + batch_size], features)  # [b, N]
        # k + 1 smallest: the first is the sample itself at distance 0.
        radii.append(distances.topk(k + 1, dim=1, largest=False).values[:, k])
    return torch.cat(radii)


def manifold_coverage(
    queries: torch.Tensor, reference: torch.Tensor, radii: torch.Tensor, *, batch_size: int = 1024
) -> float:
    """Share of queries [M, D] inside at least one reference ball (reference [N, D], radii [N])."""
    inside = 0
    for start in range(0, queries.shape[0], batch_size):
        distances = torch.cdist(queries[start : start + batch_size], reference)  # [b, N]
        inside += int((distances <= radii[None, :]).any(dim=1).sum())
    return inside / queries.shape[0]


def precision_recall(
    real_features, generated_features, *, k: int = 3, batch_size: int = 1024
) -> PrecisionRecall:
    """Improved precision and recall of generated features against real ones (k-NN manifolds).

    Args:
        k: neighbourhood size for the manifold radii (3 in the paper).
        batch_size: rows of the distance matrix computed at once (memory: batch_size x N).
    """
    real = _as_features(real_features, "real_features")
    fake = _as_features(generated_features, "generated_features")
    require(
        real.shape[1] == fake.shape[1],
        "generated_features",
        tuple(fake.shape),
        f"the same feature dimension as real_features ({real.shape[1]})",
    )
    smallest = min(real.shape[0], fake.shape[0])
    require(1 <= k < smallest, "k", k, f"an integer in [1, {smallest - 1}] (below both set sizes)")
    require(batch_size >= 1, "batch_size", batch_size, "an integer >= 1")
    real_radii = knn_radii(real, k=k, batch_size=batch_size)
    fake_radii = knn_radii(fake, k=k, batch_size=batch_size)
    return PrecisionRecall(
        precision=manifold_coverage(fake, real, real_radii, batch_size=batch_size),
        recall=manifold_coverage(real, fake, fake_radii, batch_size=batch_size),
    )
