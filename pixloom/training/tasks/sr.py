"""Task "sr": super-resolution training of espcn / edsr / rrdb on HR crops of a dataset.

The dataset hands HR crops (`resolution` = HR patch side, a multiple of `scale`); the LR
input is made on the fly by pixloom.data.degradations ("bicubic", or the blind "real"
degradation of Real-ESRGAN), deterministically from (seed, step, item index), as are the
flip/rotation augmentations, so a resumed run sees exactly the same pairs.

Losses: L1 (the PSNR-oriented training of EDSR, Lim et al. 2017), or L2 (`pixel_loss: l2`,
the loss PSNR itself measures, for a last fine-tune of an L1-trained model). `luma_weight`
adds the mean squared error of the BT.601 luma, the channel the SR literature (and
`pixloom eval sr`) measures PSNR on, as a second term beside the RGB pixel loss. With `adversarial` the
task adds a spectrally normalized patch discriminator and the relativistic average GAN loss
of ESRGAN (Wang et al. 2018, arXiv:1809.00219) as a second phase; ESRGAN starts that
fine-tune from a PSNR-trained generator (`init_from`). ESRGAN's VGG perceptual loss needs
VGG19 weights pixloom does not ship, so it is left out: L1 + GAN only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from pixloom.configs import config_from_dict, config_to_dict
from pixloom.data.degradations import RealDegradationConfig, make_lr
from pixloom.errors import CheckpointError, InvalidValue, require
from pixloom.metrics.quality import BT601_LUMA, DATA_RANGE
from pixloom.models.registry import build_model, get_model_entry
from pixloom.models.sr import deepen_edsr_weights
from pixloom.training.task import Phase, register_task

GENERATORS = ("espcn", "edsr", "rrdb")


@dataclass
class SrTaskOptions:
    """Options of the sr task (TrainConfig.task_options)."""

    model: Literal["espcn", "edsr", "rrdb"] = "edsr"
    scale: int = 4
    model_config: dict[str, Any] = field(default_factory=dict)  # fields of the family's config
    degradation: Literal["bicubic", "real"] = "bicubic"
    real_degradation: dict[str, Any] = field(default_factory=dict)  # RealDegradationConfig fields
    lr: float = 2e-4  # Adam learning rate of the generator (EDSR: 1e-4 at batch 16)
    pixel_loss: Literal["l1", "l2"] = "l1"  # L1 (EDSR) or mean squared error
    luma_weight: float = 0.0  # weight of an extra MSE on BT.601 luma (Y-PSNR's channel)
    augment: bool = True  # random flips and 90-degree rotations of each crop
    seed: int = 0  # seeds degradations and augmentations together with (step, index)
    adversarial: bool = False  # ESRGAN-style fine-tune: add the discriminator phase
    gan_weight: float = 0.01  # weight of the generator's RaGAN loss next to L1 (weight 1)
    discriminator_lr: float = 1e-4
    discriminator: dict[str, Any] = field(default_factory=dict)  # PatchDiscriminatorConfig fields
    init_from: str | None = None  # generator checkpoint to start from (x2 -> x4, GAN fine-tune)

    def __post_init__(self) -> None:
        require(self.scale in (2, 3, 4), "task_options.scale", self.scale, "one of 2, 3, 4")
        require(self.lr > 0, "task_options.lr", self.lr, "a positive learning rate")
        require(self.luma_weight >= 0, "task_options.luma_weight", self.luma_weight, ">= 0")
        require(self.gan_weight >= 0, "task_options.gan_weight", self.gan_weight, ">= 0")
        require(
            self.discriminator_lr > 0, "task_options.discriminator_lr", self.discriminator_lr, "> 0"
        )
        require(
            "scale" not in self.model_config,
            "task_options.model_config.scale",
            self.model_config.get("scale"),
            "absent: set task_options.scale instead",
        )


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of [B, 3, H, W] RGB in [0, 1], on the 0-1 scale without the offset -> [B, H, W]."""
    weights = torch.tensor(BT601_LUMA, dtype=rgb.dtype, device=rgb.device) / DATA_RANGE
    return torch.einsum("bchw,c->bhw", rgb, weights)


def relativistic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, *, for_generator: bool):
    """Relativistic average GAN loss (Jolicoeur-Martineau 2018), as used by ESRGAN."""
    real_rel = real_logits - fake_logits.mean()
    fake_rel = fake_logits - real_logits.mean()
    real_target, fake_target = (0.0, 1.0) if for_generator else (1.0, 0.0)
    return 0.5 * (
        F.binary_cross_entropy_with_logits(real_rel, torch.full_like(real_rel, real_target))
        + F.binary_cross_entropy_with_logits(fake_rel, torch.full_like(fake_rel, fake_target))
    )


def augment_batch(hr: torch.Tensor, seeds: list[int]) -> torch.Tensor:
    """Flip and rotate each square crop by its own seed (8 dihedral variants)."""
    out = []
    for image, seed in zip(hr, seeds):
        hflip, vflip, rotations = np.random.default_rng([seed, 1]).integers(0, 2, 3)
        image = image.flip(-1) if hflip else image
        image = image.flip(-2) if vflip else image
        out.append(image.rot90(1, (-2, -1)) if rotations else image)
    return torch.stack(out)


def load_generator_weights(generator: nn.Module, family: str, path: str) -> list[str]:
    """Copy every same-named, same-shaped tensor of a `family` checkpoint into `generator`.

    Starting x3/x4 from a trained x2 model (all but the upsampler match) is how EDSR trains
    its larger scales (Lim et al. 2017); an ESRGAN fine-tune loads everything; an EDSR with
    more blocks than the checkpoint starts with the added blocks as identities. `path` is a
    checkpoint directory, a shipped name (`edsr-x2`) or a run directory
    (its `model`, else its latest checkpoint). Returns the names left at their
    initialization; refuses a checkpoint that supplies under half.
    """
    from pixloom.io.checkpoint import load_checkpoint
    from pixloom.training.checkpointing import resolve_trained

    try:
        checkpoint = load_checkpoint(resolve_trained(path))
    except CheckpointError as error:
        raise CheckpointError(f"task_options.init_from: {error}") from error
    if checkpoint.family != family:
        raise InvalidValue(
            "task_options.init_from", path, f"a {family} checkpoint, not {checkpoint.family}"
        )
    weights = checkpoint.weights
    if family == "edsr":  # a deeper EDSR grows from a shallower one, starting as its function
        blocks, own_blocks = checkpoint.model_config["num_blocks"], generator.config.num_blocks
        require(
            blocks <= own_blocks,
            "task_options.model_config.num_blocks",
            own_blocks,
            f">= the {blocks} blocks of the init_from model (a model grows, it is not cut)",
        )
        weights = deepen_edsr_weights(weights, blocks, generator)
    own = generator.state_dict()
    usable = {k: v for k, v in weights.items() if k in own and own[k].shape == v.shape}
    if len(usable) * 2 < len(own):
        raise CheckpointError(
            f"{path}: only {len(usable)} of {len(own)} tensors fit {family} "
            f"with model config {checkpoint.model_config}"
        )
    generator.load_state_dict(usable, strict=False)
    return sorted(set(own) - set(usable))


class SrTask:
    """L1 phase "g" on the generator, plus phase "d" (RaGAN) when adversarial."""

    ema_module = "generator"

    def __init__(self, options: SrTaskOptions, dataset_info: Any):
        resolution = dataset_info.resolution
        require(
            resolution % options.scale == 0,
            "resolution",
            resolution,
            f"a multiple of task_options.scale={options.scale} (the HR patch side)",
        )
        self.options = options
        entry = get_model_entry(options.model)
        self.model_config = config_from_dict(
            entry.config_cls,
            {**options.model_config, "scale": options.scale},
            where="task_options.model_config",
        )
        self.generator = build_model(options.model, self.model_config)
        self._pairs: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}  # this step's pairs
        self.fresh: list[str] = []  # generator tensors init_from did not supply
        if options.init_from is not None:
            self.fresh = load_generator_weights(self.generator, options.model, options.init_from)
        self.real_config = config_from_dict(
            RealDegradationConfig, options.real_degradation, where="task_options.real_degradation"
        )
        self.discriminator = None
        if options.adversarial:
            self.discriminator = build_model("sr_patch_discriminator", options.discriminator)

    def modules(self) -> dict[str, nn.Module]:
        """The generator, and the discriminator when adversarial."""
        modules = {"generator": self.generator}
        if self.discriminator is not None:
            modules["discriminator"] = self.discriminator
        return modules

    def phases(self) -> list[Phase]:
        """G (L1 [+ GAN]) and, when adversarial, D (ESRGAN uses Adam betas 0.9, 0.99)."""
        phases = [Phase("g", ["generator"], self.options.lr, betas=(0.9, 0.99))]
        if self.discriminator is not None:
            phases.append(
                Phase("d", ["discriminator"], self.options.discriminator_lr, betas=(0.9, 0.99))
            )
        return phases

    def make_pair(self, batch: dict, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(LR, HR) in [0, 1] for a batch, deterministic in (seed, step, index).

        The pairs of the current step are cached, so the D phase of the adversarial variant
        does not pay for the (slow, CPU) blind degradation a second time.
        """
        key = (step, tuple(int(i) for i in batch["index"]))
        if key not in self._pairs:
            self._pairs = {k: v for k, v in self._pairs.items() if k[0] == step}
            self._pairs[key] = self._build_pair(batch, step)
        return self._pairs[key]

    def _build_pair(self, batch: dict, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        hr = (batch["image"].float() + 1) / 2  # (B, 3, H, W) from [-1, 1]
        seeds = [
            int(np.random.SeedSequence([self.options.seed, step, int(i)]).generate_state(1)[0])
            for i in batch["index"]
        ]
        if self.options.augment:
            hr = augment_batch(hr, seeds)
        with torch.autocast(hr.device.type, enabled=False):  # degrade in fp32, not bf16
            if self.options.degradation == "real":
                lr = make_lr(
                    hr.cpu(), self.options.scale, kind="real", seeds=seeds, config=self.real_config
                ).to(hr.device)
            else:  # the LR a user feeds in is 8-bit: quantize like a saved PNG
                lr = (make_lr(hr, self.options.scale, kind="bicubic") * 255).round() / 255
        layout = (
            torch.channels_last
            if batch["image"].is_contiguous(memory_format=torch.channels_last)
            else torch.contiguous_format
        )
        return lr.contiguous(memory_format=layout), hr.contiguous(memory_format=layout)

    def loss(self, phase: str, batch: dict, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Phase g: the pixel loss (+ gan_weight * RaGAN); phase d: the discriminator's RaGAN."""
        lr, hr = self.make_pair(batch, step)
        if phase == "d":
            with torch.no_grad():
                sr = self.generator(lr)
            loss = relativistic_loss(
                self.discriminator(hr).float(), self.discriminator(sr).float(), for_generator=False
            )
            return loss, {}
        sr = self.generator(lr).float()
        l1 = F.l1_loss(sr, hr)
        pixel = l1 if self.options.pixel_loss == "l1" else F.mse_loss(sr, hr)
        if self.options.luma_weight > 0:
            pixel = pixel + self.options.luma_weight * F.mse_loss(luma(sr), luma(hr))
        mse = F.mse_loss(sr.detach().clamp(0, 1), hr).clamp_min(1e-10)
        metrics = {"l1": float(l1.detach()), "psnr": float(-10 * torch.log10(mse))}
        if self.discriminator is None:
            return pixel, metrics
        gan = relativistic_loss(
            self.discriminator(hr).float().detach(),
            self.discriminator(sr).float(),
            for_generator=True,
        )
        metrics["gan"] = float(gan.detach())
        return pixel + self.options.gan_weight * gan, metrics

    def export_config(self) -> dict:
        """The inference checkpoint: the generator's family and config."""
        return {"family": self.options.model, "model": config_to_dict(self.model_config)}

    def state_dict(self) -> dict:
        """No state beyond the modules (randomness derives from step and index)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Nothing to restore."""

    def sample_images(self, modules: dict[str, nn.Module], step: int) -> list | None:
        """No preview grid (measure with the Set5 protocol instead)."""
        return None


@register_task("sr")
def make_sr_task(options: dict, dataset_info: Any) -> SrTask:
    """Build the SR task from its options (unknown options are refused by name)."""
    return SrTask(config_from_dict(SrTaskOptions, options, where="task_options"), dataset_info)
