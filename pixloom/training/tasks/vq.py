"""Task "vq": train the VQ/FSQ image tokenizer (pixloom.models.vq) as in VQGAN.

Phase "ae" (the tokenizer): l1_weight * L1 + l2_weight * L2 reconstruction + the quantizer's
codebook/commitment loss (VQ-VAE, van den Oord et al. 2017), plus, from step
`adversarial_start` on, adversarial_weight * the non-saturating generator loss of a PatchGAN
(VQGAN, Esser et al. 2021, which also starts its discriminator late so the codebook settles
first). Phase "d" (the discriminator, only built when adversarial_weight > 0): the logistic
loss of pixloom.training.tasks.gan_losses on originals vs reconstructions.

`init_from` starts from a trained tokenizer; with `decoder_only` its encoder and codebook
stay frozen (and the quantizer in eval mode, so no code is restarted), so every image keeps
its tokens and every token model trained on them stays valid: `pixloom export --tokenizer`
then puts the sharper decoder into such a model.

The engine has no per-phase start step, so before `adversarial_start` the "d" phase returns a
zero loss that reaches no parameter: no gradient, so AdamW skips every parameter and its
moments stay empty; the reconstruction of the "ae" phase is cached for "d" so the
quantizer's usage counters (dead-code restart) see each batch once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from pixloom.configs import config_from_dict, config_to_dict
from pixloom.errors import require
from pixloom.models.quantizers import code_statistics
from pixloom.models.registry import build_model
from pixloom.models.vq import VqConfig
from pixloom.training.task import Phase, register_task
from pixloom.training.tasks.gan_losses import discriminator_loss, generator_loss

PREVIEW_COUNT = 8  # originals kept (from the first batch) for the preview grids


@dataclass
class VqTaskOptions:
    """Options of the vq task (TrainConfig.task_options)."""

    model_config: dict[str, Any] = field(default_factory=dict)  # VqConfig fields but resolution
    lr: float = 2e-4  # Adam learning rate of the tokenizer
    discriminator_lr: float = 2e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.9])  # VQGAN / LlamaGen
    l1_weight: float = 1.0
    l2_weight: float = 1.0
    quantizer_weight: float = 1.0  # weight of Quantized.loss (codebook + beta * commitment)
    adversarial_weight: float = 0.1  # 0: no discriminator at all (pure autoencoder training)
    adversarial_start: int = 2000  # first step of the "d" phase and of the G adversarial term
    init_from: str | None = None  # trained vq checkpoint to start from (its config is used)
    decoder_only: bool = False  # train the decoder alone: the codes stay (needs init_from)

    def __post_init__(self) -> None:
        for name in ("lr", "discriminator_lr"):
            require(getattr(self, name) > 0, f"task_options.{name}", getattr(self, name), "> 0")
        for name in ("l1_weight", "l2_weight", "quantizer_weight", "adversarial_weight"):
            require(getattr(self, name) >= 0, f"task_options.{name}", getattr(self, name), ">= 0")
        require(
            self.l1_weight + self.l2_weight > 0,
            "task_options.l1_weight",
            self.l1_weight,
            "> 0 when l2_weight is 0 (some reconstruction loss is needed)",
        )
        require(
            self.adversarial_start >= 0,
            "task_options.adversarial_start",
            self.adversarial_start,
            "a step >= 0 (0: adversarial from the first step)",
        )
        require(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            "task_options.betas",
            self.betas,
            "two Adam betas in [0, 1), e.g. [0.5, 0.9]",
        )
        require(
            self.init_from is not None or not self.decoder_only,
            "task_options.decoder_only",
            self.decoder_only,
            "false unless task_options.init_from names the tokenizer whose decoder to train",
        )
        require(
            "resolution" not in self.model_config,
            "task_options.model_config.resolution",
            self.model_config.get("resolution"),
            "absent: the tokenizer takes the dataset's resolution (set `resolution`)",
        )


def psnr_db(reconstruction: torch.Tensor, target: torch.Tensor) -> float:
    """Mean-squared-error PSNR (dB) of [-1, 1] images measured on [0, 1]."""
    mse = F.mse_loss((reconstruction.clamp(-1, 1) + 1) / 2, (target + 1) / 2).clamp_min(1e-10)
    return float(-10 * torch.log10(mse))


def start_from(name_or_path: str, fields: dict[str, Any]) -> tuple[nn.Module, VqConfig]:
    """A trained tokenizer to go on training and its config, which `fields` must agree with."""
    from pixloom.training.tasks.token_lm import load_tokenizer

    tokenizer, stored = load_tokenizer(name_or_path, field="task_options.init_from")
    for name, value in fields.items():
        where = "resolution" if name == "resolution" else f"task_options.model_config.{name}"
        require(stored.get(name) == value, where, value,
                f"{stored.get(name)!r}, as in {name_or_path} (init_from)")  # fmt: skip
    return tokenizer.requires_grad_(True), config_from_dict(VqConfig, stored)


class VqTask:
    """Phase "ae" (tokenizer) and, when adversarial_weight > 0, phase "d" (PatchGAN)."""

    ema_module = "tokenizer"

    def __init__(self, options: VqTaskOptions, dataset_info: Any):
        self.options = options
        fields = {**options.model_config, "resolution": dataset_info.resolution}
        if options.init_from is None:
            self.model_config = config_from_dict(
                VqConfig, fields, where="task_options.model_config"
            )
            self.tokenizer = build_model("vq", self.model_config)
        else:
            self.tokenizer, self.model_config = start_from(options.init_from, fields)
        if options.decoder_only:
            self.tokenizer.encoder.requires_grad_(False)
            self.tokenizer.quantizer.requires_grad_(False)
        self.discriminator = None
        if options.adversarial_weight > 0:
            self.discriminator = build_model("vq-discriminator", self.model_config)
        self.preview: torch.Tensor | None = None  # (8, 3, H, W) originals, CPU fp32
        self._cache: dict[tuple, torch.Tensor] = {}  # this step's reconstructions for "d"

    def modules(self) -> dict[str, nn.Module]:
        """The tokenizer, and the discriminator when adversarial."""
        modules = {"tokenizer": self.tokenizer}
        if self.discriminator is not None:
            modules["discriminator"] = self.discriminator
        return modules

    def phases(self) -> list[Phase]:
        """Phase "ae" and, when adversarial, phase "d" (Adam with the configured betas)."""
        betas = tuple(self.options.betas)
        phases = [Phase("ae", ["tokenizer"], self.options.lr, betas=betas)]
        if self.discriminator is not None:
            phases.append(Phase("d", ["discriminator"], self.options.discriminator_lr, betas=betas))
        return phases

    def adversarial(self, step: int) -> bool:
        """Whether the adversarial terms are on at `step`."""
        return self.discriminator is not None and step >= self.options.adversarial_start

    def loss(self, phase: str, batch: dict, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of `phase` on a batch of images in [-1, 1]."""
        image = batch["image"]
        if self.preview is None:
            self.preview = image[:PREVIEW_COUNT].detach().float().cpu().contiguous()
        key = (step, tuple(int(i) for i in batch.get("index", ())))
        if phase == "d":
            return self.discriminator_phase(image, key, step)
        if self.options.decoder_only:  # the frozen half encodes as it did: no code restarts
            self.tokenizer.encoder.eval()
            self.tokenizer.quantizer.eval()
            with torch.no_grad():
                quantized = self.tokenizer.encode(image)
        else:
            quantized = self.tokenizer.encode(image)
        reconstruction = self.tokenizer.decode_latents(quantized.z).float()
        self._cache = {key: reconstruction.detach()} | {
            k: v for k, v in self._cache.items() if k[0] == step
        }
        target = image.float()
        l1, l2 = F.l1_loss(reconstruction, target), F.mse_loss(reconstruction, target)
        options = self.options
        loss = options.l1_weight * l1 + options.l2_weight * l2
        loss = loss + options.quantizer_weight * quantized.loss.float()
        usage, perplexity = code_statistics(quantized.indices, self.tokenizer.codebook_size)
        metrics = {
            "l1": float(l1.detach()),
            "l2": float(l2.detach()),
            "quantizer": float(quantized.loss.detach()),
            "psnr": psnr_db(reconstruction.detach(), target),
            "codebook_usage": usage,
            "perplexity": perplexity,
        }
        if self.adversarial(step):
            adversarial = generator_loss(self.discriminator(reconstruction))
            loss = loss + options.adversarial_weight * adversarial
            metrics["adversarial"] = float(adversarial.detach())
        return loss, metrics

    def discriminator_phase(self, image: torch.Tensor, key: tuple, step: int):
        """Logistic D loss on originals vs the "ae" phase's reconstructions of this batch."""
        if not self.adversarial(step):  # reaches no parameter: AdamW leaves D untouched
            return torch.zeros((), device=image.device, requires_grad=True), {}
        fake = self._cache.get(key)
        if fake is None:  # "d" without a preceding "ae" on this batch: reconstruct
            with torch.no_grad():
                fake = self.tokenizer(image).float()
        real_logits, fake_logits = self.discriminator(image), self.discriminator(fake)
        metrics = {
            "real": float(real_logits.detach().float().mean()),
            "fake": float(fake_logits.detach().float().mean()),
        }
        return discriminator_loss(real_logits, fake_logits), metrics

    def export_config(self) -> dict:
        """The tokenizer's family and config."""
        return {"family": "vq", "model": config_to_dict(self.model_config)}

    def state_dict(self) -> dict:
        """The preview originals (so a resumed run draws the same grids)."""
        return {"preview": self.preview}

    def load_state_dict(self, state: dict) -> None:
        """Restore the preview originals."""
        self.preview = state.get("preview")

    def sample_images(self, modules: dict[str, nn.Module], step: int) -> list | None:
        """Each preview original beside its reconstruction (EMA weights)."""
        from PIL import Image

        from pixloom.pipelines.text_to_image import tensor_to_images

        if self.preview is None:
            return None
        tokenizer = modules["tokenizer"]
        device = next(tokenizer.parameters()).device
        originals = self.preview.to(device)
        reconstructions = tokenizer.decode(tokenizer.encode(originals).indices)
        pairs = []
        for original, reconstruction in zip(
            tensor_to_images(originals), tensor_to_images(reconstructions)
        ):
            pair = Image.new("RGB", (original.width * 2, original.height))
            pair.paste(original, (0, 0))
            pair.paste(reconstruction, (original.width, 0))
            pairs.append(pair)
        return pairs


@register_task("vq")
def make_vq_task(options: dict, dataset_info: Any) -> VqTask:
    """Build the vq task from its options (unknown options are refused by name)."""
    return VqTask(config_from_dict(VqTaskOptions, options, where="task_options"), dataset_info)
