"""Schedule, EMA, data order, task registry, classifier model and the bf16 path."""

from __future__ import annotations

import json
import math

import pytest
import torch
from PIL import Image
from toy import ToyDataset, toy_config

from pixloom.errors import InvalidValue
from pixloom.models.registry import build_model
from pixloom.training.config import TrainConfig
from pixloom.training.data_order import DataOrder, iterate_batches
from pixloom.training.ema import EMA
from pixloom.training.engine import train
from pixloom.training.schedule import lr_factor
from pixloom.training.task import get_task, register_task, task_names
from pixloom.training.tasks.classifier import (
    ClassifierTask,
    make_classifier_task,
    random_translate,
)


def test_warmup_then_cosine():
    factors = [lr_factor(s, warmup_steps=4, total_steps=14, schedule="cosine") for s in range(14)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert math.isclose(factors[9], 0.5) and factors[13] < factors[12] < 1.0
    assert lr_factor(100, warmup_steps=0, total_steps=10, schedule="constant") == 1.0


def test_ema_follows_with_warmup():
    module = torch.nn.Linear(2, 2)
    ema = EMA(module, decay=0.9, warmup=10)
    assert ema.decay_at(0) == 0.0 and ema.decay_at(20) == 0.9
    with torch.no_grad():
        module.weight.add_(1.0)
    ema.update(module, 0)  # decay 0: copy
    assert torch.equal(ema.module.weight, module.weight)
    assert not ema.module.weight.requires_grad


def test_data_order_is_a_function_of_seed_and_step():
    order = DataOrder(dataset_size=10, batch_size=3, seed=1)
    epoch0 = [i for step in range(3) for i in order.indices(step)]
    assert len(set(epoch0)) == 9  # no repeats within an epoch; the remainder is dropped
    assert DataOrder(10, 3, 1).indices(4) == order.indices(4)
    assert DataOrder(10, 3, 2).indices(4) != order.indices(4)
    dataset = ToyDataset(size=10)
    steps = [step for step, _ in iterate_batches(dataset, order, start_step=2, end_step=5)]
    assert steps == [2, 3, 4] and dataset.epochs == [0, 1]


def test_config_and_options_are_validated():
    with pytest.raises(InvalidValue, match="grad_accum"):
        TrainConfig(batch_size=8, grad_accum=3)
    with pytest.raises(InvalidValue, match="task=.*classifier"):
        get_task("nope")
    assert "classifier" in task_names()
    with pytest.raises(InvalidValue, match="task_options.bogus"):
        get_task("classifier")({"bogus": 1}, ToyDataset().info)


def test_classifier_model_forward_backward():
    model = build_model("classifier", {"resolution": 16, "num_classes": 5, "width": 8, "depth": 3})
    images = torch.randn(2, 3, 16, 16, requires_grad=True)
    logits = model(images)
    assert logits.shape == (2, 5) and model.features(images).shape == (2, 32)
    logits.sum().backward()
    assert torch.isfinite(images.grad).all()
    with pytest.raises(InvalidValue, match="resolution"):
        build_model("classifier", {"resolution": 10, "depth": 3})


def test_random_translate_keeps_shape_and_content():
    images = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    shifted = random_translate(images, 0)
    assert torch.equal(shifted, images)
    assert random_translate(images, 2).shape == images.shape


def test_bf16_runs_and_matches_fp32(tmp_path):
    fp32 = train(toy_config(tmp_path / "fp32", steps=3), dataset=ToyDataset())
    bf16 = train(toy_config(tmp_path / "bf16", steps=3, precision="bf16"), dataset=ToyDataset())
    for key in ("classify/loss", "classify/grad_norm"):
        assert math.isfinite(bf16.metrics[key])
        assert abs(bf16.metrics[key] - fp32.metrics[key]) < 0.05 * max(1.0, fp32.metrics[key])


def test_workers_yield_the_same_batches():
    order = DataOrder(dataset_size=12, batch_size=4, seed=0)
    plain = list(iterate_batches(ToyDataset(12), order, start_step=1, end_step=5))
    workers = list(iterate_batches(ToyDataset(12), order, start_step=1, end_step=5, num_workers=1))
    assert [s for s, _ in plain] == [s for s, _ in workers] == [1, 2, 3, 4]
    for (_, a), (_, b) in zip(plain, workers):
        assert torch.equal(a["index"], b["index"]) and torch.equal(a["image"], b["image"])


class _PreviewTask(ClassifierTask):
    def sample_images(self, modules, step):
        assert not modules["classifier"].training  # the EMA copy, in eval mode
        return [Image.new("RGB", (8, 8), (step * 40, 0, 0)) for _ in range(2)]


@register_task("test-preview")
def _make_preview(options, dataset_info):
    return _PreviewTask(make_classifier_task(options, dataset_info).options, dataset_info)


def test_samples_and_tensorboard_are_written(tmp_path):
    config = toy_config(tmp_path, task="test-preview", steps=4, sample_every=2, tensorboard=True)
    train(config, dataset=ToyDataset())
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        "step-0000002.png",
        "step-0000004.png",
    ]
    assert any((tmp_path / "tensorboard").iterdir())
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4]
