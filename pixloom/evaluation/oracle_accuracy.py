"""How well the oracles read held-out data: the figures their model cards report."""

from __future__ import annotations

import torch

from pixloom.data.artifacts import ArtifactOptions, apply_artifacts
from pixloom.data.registry import load_dataset

ATTRIBUTES = ("shape", "color", "size", "position")


def scene_parser_accuracy(
    oracle, *, resolution: int, count: int = 2000, artifacts: bool = False, seed: int = 0
) -> dict:
    """Per-attribute, count and whole-scene accuracy on the first `count` test renders.

    Each true object is compared with the parsed object in its grid cell (a missing one is
    wrong on every attribute); a scene is right when the count and every attribute agree.
    """
    dataset = load_dataset("shapes", split="test", resolution=resolution, heldout_pairs=[])
    generator = torch.Generator().manual_seed(seed)
    hits = dict.fromkeys(ATTRIBUTES, 0)
    objects = scenes_right = counts_right = 0
    for start in range(0, count, 256):
        indices = range(start, min(count, start + 256))
        images = torch.stack([dataset[i]["image"] for i in indices])
        if artifacts:
            images = apply_artifacts(images, ArtifactOptions(probability=1.0), generator)
        for index, parsed in zip(indices, oracle.parse(images)):
            truth = dataset.scene(index).objects
            by_cell = {obj.position: obj for obj in parsed}
            scene_ok = len(parsed) == len(truth)
            counts_right += scene_ok
            for obj in truth:
                found = by_cell.get(obj.position)
                objects += 1
                for name in ATTRIBUTES:
                    ok = found is not None and getattr(found, name) == getattr(obj, name)
                    hits[name] += ok
                    scene_ok = scene_ok and ok
            scenes_right += scene_ok
    result = {name: hits[name] / objects for name in ATTRIBUTES}
    result.update(
        count=counts_right / count, scene=scenes_right / count, scenes=count, objects=objects
    )
    return result


def classifier_accuracy(oracle, data: str = "digits", *, resolution: int = 32) -> dict:
    """Top-1 accuracy of a classifier oracle on the whole test split."""
    dataset = load_dataset(data, split="test", resolution=resolution)
    right = 0
    for start in range(0, len(dataset), 256):
        items = [dataset[i] for i in range(start, min(len(dataset), start + 256))]
        predicted = oracle.predict(torch.stack([item["image"] for item in items]))
        right += sum(int(p) == item["label"] for p, item in zip(predicted, items))
    return {"accuracy": right / len(dataset), "images": len(dataset)}
