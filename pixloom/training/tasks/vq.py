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

`text_encoder: builtin` gives the decoder the prompt (pixloom.models.vq): a built-in text
encoder over the training captions' vocabulary trains with it, through the reconstruction
loss. Captions are dropped to "" with probability `prompt_dropout`, so the decoder still
draws from the codes alone when a prompt says nothing it knows. With `init_from` an
unconditioned tokenizer gains the cross-attention (starting as the identity); a conditioned
one keeps its own encoder and vocabulary.

The engine has no per-phase start step, so before `adversarial_start` the "d" phase returns a
zero loss that reaches no parameter: no gradient, so AdamW skips every parameter and its
moments stay empty; the reconstruction of the "ae" phase is cached for "d" so the
quantizer's usage counters (dead-code restart) see each batch once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from pixloom.configs import config_from_dict, config_to_dict
from pixloom.errors import CheckpointError, require
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
    text_encoder: str = "none"  # "builtin": the decoder reads the prompt; "none": it does not
    text_encoder_config: dict[str, Any] = field(default_factory=dict)  # builtin: dim, layers..
    vocab_size: int = 1024  # builtin: most frequent caption words kept (+ specials)
    vocab_captions: int = 20_000  # builtin: training captions scanned for the vocabulary
    prompt_dropout: float = 0.1  # captions replaced by "" (text-conditioned decoder only)
    code_noise: float = 0.0  # decoder_only: share of cells given a random code before decoding

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
            self.text_encoder in ("none", "builtin"),
            "task_options.text_encoder",
            self.text_encoder,
            "'none' or 'builtin' (a text-conditioned decoder trains its own encoder)",
        )
        require(0 <= self.prompt_dropout < 1, "task_options.prompt_dropout",
                self.prompt_dropout, "a probability in [0, 1)")  # fmt: skip
        require(0 <= self.code_noise < 1, "task_options.code_noise", self.code_noise,
                "a probability in [0, 1)")  # fmt: skip
        require(self.code_noise == 0 or self.decoder_only, "task_options.code_noise",
                self.code_noise, "0 unless decoder_only is true (noisy codes pass no "
                "gradient to the encoder)")  # fmt: skip
        require(
            "text_encoder" not in self.model_config,
            "task_options.model_config.text_encoder",
            self.model_config.get("text_encoder"),
            "absent: set task_options.text_encoder",
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


def start_from(
    name_or_path: str, fields: dict[str, Any], text_spec: Callable[[], dict[str, Any]]
) -> tuple[nn.Module, VqConfig]:
    """A trained tokenizer to go on training and its config, which `fields` must agree with.
    A non-empty `text_spec()` gives an unconditioned tokenizer a text-conditioned decoder
    whose new layers start as the identity; a conditioned tokenizer keeps its own (and
    `text_spec`, which scans captions for a vocabulary, is not called)."""
    from pixloom.training.tasks.token_lm import load_tokenizer

    tokenizer, stored = load_tokenizer(name_or_path, field="task_options.init_from")
    for name, value in fields.items():
        where = "resolution" if name == "resolution" else f"task_options.model_config.{name}"
        require(stored.get(name) == value, where, value,
                f"{stored.get(name)!r}, as in {name_or_path} (init_from)")  # fmt: skip
    spec = {} if stored.get("text_encoder") else text_spec()
    if spec:
        config = config_from_dict(VqConfig, {**stored, "text_encoder": spec})
        conditioned = build_model("vq", config)
        missing, unexpected = conditioned.load_state_dict(tokenizer.state_dict(), strict=False)
        new = [name for name in missing if not name.startswith(("decoder.cross.", "text_encoder."))]
        if new or unexpected:
            raise CheckpointError(f"{name_or_path}: its weights do not fit a text-conditioned "
                                  f"decoder (missing {new[:3]}, unexpected {unexpected[:3]})")  # fmt: skip
        return conditioned.requires_grad_(True), config
    return tokenizer.requires_grad_(True), config_from_dict(VqConfig, stored)


class VqTask:
    """Phase "ae" (tokenizer) and, when adversarial_weight > 0, phase "d" (PatchGAN)."""

    ema_module = "tokenizer"

    def __init__(self, options: VqTaskOptions, dataset_info: Any):
        self.options = options
        fields = {**options.model_config, "resolution": dataset_info.resolution}
        text_spec = functools.partial(decoder_text_spec, options, dataset_info)
        if options.init_from is None:
            self.model_config = config_from_dict(
                VqConfig, {**fields, "text_encoder": text_spec()}, where="task_options.model_config"
            )
            self.tokenizer = build_model("vq", self.model_config)
        else:
            self.tokenizer, self.model_config = start_from(options.init_from, fields, text_spec)
        if options.decoder_only:
            self.tokenizer.encoder.requires_grad_(False)
            self.tokenizer.quantizer.requires_grad_(False)
        self.discriminator = None
        if options.adversarial_weight > 0:
            self.discriminator = build_model("vq-discriminator", self.model_config)
        self.preview: torch.Tensor | None = None  # (8, 3, H, W) originals, CPU fp32
        self.preview_captions: list[str] | None = None  # their captions (conditioned decoder)
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
        prompts = self.prompts(batch, train=phase == "ae")
        if self.preview is None:
            self.preview = image[:PREVIEW_COUNT].detach().float().cpu().contiguous()
            if prompts is not None:
                self.preview_captions = list(batch["caption"][:PREVIEW_COUNT])
        key = (step, tuple(int(i) for i in batch.get("index", ())))
        if phase == "d":
            return self.discriminator_phase(image, key, step, prompts)
        if self.options.decoder_only:  # the frozen half encodes as it did: no code restarts
            self.tokenizer.encoder.eval()
            self.tokenizer.quantizer.eval()
            with torch.no_grad():
                quantized = self.tokenizer.encode(image)
                latents = self.noisy_latents(quantized)
        else:
            quantized = self.tokenizer.encode(image)
            latents = quantized.z
        reconstruction = self.tokenizer.decode_latents(latents, prompts).float()
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

    def noisy_latents(self, quantized: Any) -> torch.Tensor:
        """The codes' latents with a `code_noise` share of the cells given a random code: a
        decoder that cannot trust every code leans on its neighbours and the prompt, as it
        must with a transformer's imperfect codes."""
        if self.options.code_noise == 0:
            return quantized.z
        indices = quantized.indices
        noisy = torch.rand(indices.shape) < self.options.code_noise  # the engine's RNG
        random = torch.randint(0, self.tokenizer.codebook_size, indices.shape)
        indices = torch.where(noisy.to(indices.device), random.to(indices.device), indices)
        return self.tokenizer.quantizer.lookup(indices).to(quantized.z.dtype)

    def prompts(self, batch: dict, *, train: bool) -> list[str] | None:
        """The batch's captions for a text-conditioned decoder (None for any other); in
        training each is dropped to "" with probability prompt_dropout."""
        if not self.tokenizer.text_conditioned:
            return None
        require("caption" in batch, "data", "a dataset without captions",
                "a captioned dataset: this tokenizer's decoder reads the prompt")  # fmt: skip
        captions = list(batch["caption"])
        if train and self.options.prompt_dropout > 0:
            drop = torch.rand(len(captions))  # the engine's RNG, saved with each checkpoint
            captions = ["" if d < self.options.prompt_dropout else c
                        for c, d in zip(captions, drop.tolist())]  # fmt: skip
        return captions

    def discriminator_phase(
        self, image: torch.Tensor, key: tuple, step: int, prompts: list[str] | None = None
    ):
        """Logistic D loss on originals vs the "ae" phase's reconstructions of this batch."""
        if not self.adversarial(step):  # reaches no parameter: AdamW leaves D untouched
            return torch.zeros((), device=image.device, requires_grad=True), {}
        fake = self._cache.get(key)
        if fake is None:  # "d" without a preceding "ae" on this batch: reconstruct
            with torch.no_grad():
                fake = self.tokenizer(image, cond=prompts).float()
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
        """The preview originals and their captions (so a resumed run draws the same grids)."""
        return {"preview": self.preview, "preview_captions": self.preview_captions}

    def load_state_dict(self, state: dict) -> None:
        """Restore the preview originals and their captions."""
        self.preview = state.get("preview")
        self.preview_captions = state.get("preview_captions")

    def sample_images(self, modules: dict[str, nn.Module], step: int) -> list | None:
        """Each preview original beside its reconstruction (EMA weights)."""
        from PIL import Image

        from pixloom.pipelines.text_to_image import tensor_to_images

        if self.preview is None:
            return None
        tokenizer = modules["tokenizer"]
        device = next(tokenizer.parameters()).device
        originals = self.preview.to(device)
        reconstructions = tokenizer.decode(
            tokenizer.encode(originals).indices, self.preview_captions
        )
        pairs = []
        for original, reconstruction in zip(
            tensor_to_images(originals), tensor_to_images(reconstructions)
        ):
            pair = Image.new("RGB", (original.width * 2, original.height))
            pair.paste(original, (0, 0))
            pair.paste(reconstruction, (original.width, 0))
            pairs.append(pair)
        return pairs


def decoder_text_spec(options: VqTaskOptions, dataset_info: Any) -> dict[str, Any]:
    """The built-in encoder spec of a text-conditioned decoder ({} for text_encoder none)."""
    if options.text_encoder == "none":
        return {}
    from types import SimpleNamespace

    from pixloom.training.tasks.gan import text_encoder_spec

    fields = SimpleNamespace(
        text_encoder=options.text_encoder,
        text_encoder_config=options.text_encoder_config,
        vocab_size=options.vocab_size,
        vocab_captions=options.vocab_captions,
        class_conditional=False,
    )
    return text_encoder_spec(fields, dataset_info)


@register_task("vq")
def make_vq_task(options: dict, dataset_info: Any) -> VqTask:
    """Build the vq task from its options (unknown options are refused by name)."""
    return VqTask(config_from_dict(VqTaskOptions, options, where="task_options"), dataset_info)
