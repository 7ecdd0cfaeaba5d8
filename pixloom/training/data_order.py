"""Deterministic data order: a permutation per epoch drawn from (seed, epoch).

Step s of a run always sees the same global batch, so resuming at step s continues the
exact order without replaying a sampler or relying on DataLoader worker RNG. Each rank
takes a disjoint, contiguous slice of the global batch; incomplete batches at the end of
an epoch are dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from pixloom.errors import DataError


@dataclass(frozen=True)
class DataPosition:
    epoch: int
    index: int  # first position within the epoch's permutation of the next batch
    permutation_seed: int  # generator seed of this epoch's permutation


class DataOrder:
    """Maps a 0-based step to the dataset indices of its global batch."""

    def __init__(self, dataset_size: int, batch_size: int, seed: int):
        if dataset_size < batch_size:
            raise DataError(
                f"the dataset has {dataset_size} images but batch_size={batch_size}; "
                "lower batch_size or add images"
            )
        self.dataset_size, self.batch_size, self.seed = dataset_size, batch_size, seed
        self.steps_per_epoch = dataset_size // batch_size
        self._cached: tuple[int, list[int]] | None = None

    def permutation_seed(self, epoch: int) -> int:
        """The generator seed of `epoch`'s permutation (stored in checkpoints)."""
        return (self.seed * 1_000_003 + epoch) % (2**63)

    def permutation(self, epoch: int) -> list[int]:
        """The dataset order of `epoch`."""
        if self._cached is None or self._cached[0] != epoch:
            generator = torch.Generator().manual_seed(self.permutation_seed(epoch))
            self._cached = (epoch, torch.randperm(self.dataset_size, generator=generator).tolist())
        return self._cached[1]

    def position(self, step: int) -> DataPosition:
        """Where in the data stream 0-based `step` starts."""
        epoch, within = divmod(step, self.steps_per_epoch)
        return DataPosition(epoch, within * self.batch_size, self.permutation_seed(epoch))

    def indices(self, step: int, *, rank: int = 0, world_size: int = 1) -> list[int]:
        """This rank's share of step `step`'s global batch."""
        position = self.position(step)
        batch = self.permutation(position.epoch)[position.index : position.index + self.batch_size]
        share = self.batch_size // world_size
        return batch[rank * share : (rank + 1) * share]


def _set_epoch(dataset: Dataset, epoch: int) -> None:
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)


def iterate_batches(
    dataset: Dataset,
    order: DataOrder,
    *,
    start_step: int,
    end_step: int,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int = 0,
) -> Iterator[tuple[int, dict]]:
    """Yield (step, collated batch of this rank) for steps start_step..end_step-1."""
    step = start_step
    while step < end_step:
        epoch = order.position(step).epoch
        _set_epoch(dataset, epoch)
        last = min(end_step, (epoch + 1) * order.steps_per_epoch)
        index_lists = [
            order.indices(s, rank=rank, world_size=world_size) for s in range(step, last)
        ]
        if num_workers == 0:
            batches = (default_collate([dataset[i] for i in ids]) for ids in index_lists)
        else:
            # A fresh loader per epoch, so workers copy the dataset after set_epoch().
            batches = iter(DataLoader(dataset, batch_sampler=index_lists, num_workers=num_workers))
        for batch in batches:
            yield step, batch
            step += 1
