"""Shared set-up of the tokenizer tests."""

import pytest


def train_tiny_vq(out, options: dict, *, steps: int, **fields):
    """A short fp32 vq run on 64 shapes scenes at 16 px -> (TrainResult, out)."""
    from pixloom.data.registry import load_dataset
    from pixloom.training.config import TrainConfig
    from pixloom.training.engine import train

    settings = {"batch_size": 8, "progress": False, "tensorboard": False, "precision": "fp32",
                "ema_warmup": 0, **fields}  # fmt: skip
    config = TrainConfig(task="vq", data="shapes", resolution=16, task_options=options,
                         steps=steps, out=str(out), **settings)  # fmt: skip
    return train(config, dataset=load_dataset("shapes", resolution=16, train_size=64)), out


@pytest.fixture(scope="session")
def tiny_vq_run():
    """train_tiny_vq, for tests and module fixtures."""
    return train_tiny_vq
