"""Training throughput: the pixloom engine (bf16 + channels_last) vs a plain fp32 eager loop.

Both train the same ~2.8M-parameter ResNet classifier on 32x32 images with a batch of 64
on the same device, side by side in one run, once with BatchNorm and once with GroupNorm
(GroupNorm has no fast bf16 channels_last kernel on CPU); the first step of each (warm-up)
is not timed.

    python -m benchmarks.train_throughput [--steps 5] [--rounds 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from benchmarks.table import markdown_table
from pixloom.devices import resolve_device, resolve_precision
from pixloom.models.classifier import Classifier, ClassifierConfig
from pixloom.training.config import TrainConfig
from pixloom.training.engine import train

RESOLUTION, BATCH, WIDTH, DEPTH, CLASSES = 32, 64, 96, 3, 10


@dataclass(frozen=True)
class _Info:
    name: str = "synthetic"
    resolution: int = RESOLUTION
    channels: int = 3
    num_classes: int = CLASSES


class SyntheticImages(Dataset):
    """Random 32x32 images with random labels (throughput only, nothing to learn)."""

    def __init__(self, size: int):
        generator = torch.Generator().manual_seed(0)
        self.images = torch.rand(size, 3, RESOLUTION, RESOLUTION, generator=generator) * 2 - 1
        self.labels = torch.randint(0, CLASSES, (size,), generator=generator)
        self.info = _Info()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        return {"image": self.images[index], "caption": "", "label": int(self.labels[index]),
                "index": index}  # fmt: skip


def plain_fp32_loop(dataset: SyntheticImages, steps: int, device: torch.device, norm: str) -> float:
    """images/s of a textbook loop: fp32, NCHW, AdamW, no EMA, no clipping, no logging."""
    torch.manual_seed(0)
    config = ClassifierConfig(
        resolution=RESOLUTION, num_classes=CLASSES, width=WIDTH, depth=DEPTH, norm=norm
    )
    model = Classifier(config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    elapsed = 0.0
    for step in range(steps):
        started = time.perf_counter()
        rows = slice((step * BATCH) % len(dataset), (step * BATCH) % len(dataset) + BATCH)
        images, labels = dataset.images[rows].to(device), dataset.labels[rows].to(device)
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step > 0:
            elapsed += time.perf_counter() - started
    return (steps - 1) * BATCH / elapsed


def engine_run(
    dataset: SyntheticImages, steps: int, device: str, precision: str, norm: str
) -> float:
    """images/s of pixloom.training.engine.train with the given precision."""
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(
            task="classifier", data="synthetic", resolution=RESOLUTION,
            task_options={"width": WIDTH, "depth": DEPTH, "norm": norm}, steps=steps, batch_size=BATCH,
            precision=precision, device=device, out=out, checkpoint_every=10**6,
            log_every=10**6, tensorboard=False, progress=False,
        )  # fmt: skip
        return train(config, dataset=dataset).images_per_second


def main() -> None:
    """Run both loops, interleaved over rounds, and print the best images/s and the speed-up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round (+1 warm-up)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; best is kept")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    args = parser.parse_args()
    device = resolve_device(args.device)
    dataset = SyntheticImages(BATCH * 4)
    params = sum(
        p.numel() for p in Classifier(ClassifierConfig(width=WIDTH, depth=DEPTH)).parameters()
    )
    print(f"device={device} threads={torch.get_num_threads()} params={params / 1e6:.2f}M "
          f"batch={BATCH} resolution={RESOLUTION} timed steps={args.steps} x {args.rounds} rounds "
          f"auto precision={resolve_precision('auto', device)}")  # fmt: skip
    rows = []
    for norm in ("batch", "group"):  # the same ResNet with BatchNorm, then with GroupNorm
        engine, plain = [], []
        for _ in range(args.rounds):  # interleaved, so machine load hits both alike
            engine.append(engine_run(dataset, args.steps + 1, str(device), "bf16", norm))
            plain.append(plain_fp32_loop(dataset, args.steps + 1, device, norm))
        rows.append({
            "net": f"ResNet, {norm} norm", "pixloom engine bf16+CL img/s": max(engine),
            "plain fp32 NCHW img/s": max(plain), "speed-up": max(engine) / max(plain),
        })  # fmt: skip
    print(markdown_table(rows, float_format=".2f"))


if __name__ == "__main__":
    main()
