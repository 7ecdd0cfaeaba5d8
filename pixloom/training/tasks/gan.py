"""Task "gan": text-conditional (or unconditional) GAN training of mlp-gan, dcgan, stylegan.

With `class_conditional`, the prompt of an image is its class id written as one word ("7"):
the built-in encoder, with the class ids as its vocabulary, learns them like captions, so
the generator, the projection discriminator and the pipeline need nothing else.

Phases (StyleGAN2-ADA's layout, Karras et al. 2020): "g" (non-saturating loss, style
mixing for stylegan), "d" (logistic loss + the matching-aware term: real image with a
shifted caption counts as fake, Reed et al. 2016; with `swap_weight`, also with its own
caption with two words swapped) and the lazy "r1" phase every
`r1_interval` steps (Mescheder et al. 2018). DiffAugment (Zhao et al. 2020) is applied to
every image the discriminator sees. The engine keeps an EMA of the generator, which holds
the built-in text encoder when there is one; that encoder is trained by the D phase only
(its gradients come from telling matched from mismatched captions); frozen encoders are
cached by caption.

With `critic`, a trained image-text critic (task "critic") judges every fake against its
caption in the G phase and its match loss joins the generator's, weighted by
`critic_weight`: a frozen judge that knows shapes, colours and which goes with which, as
StyleGAN-T's generator is guided by CLIP (Sauer et al. 2023). With `init_from`, the
generator starts from a trained one of the same family (its config and text encoder kept)
and the discriminator starts afresh: a fine-tune.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from pixloom.configs import config_from_dict, config_to_dict
from pixloom.errors import CheckpointError, require
from pixloom.models.registry import build_model, get_model_entry
from pixloom.sampling.truncation import style_mix
from pixloom.text.embedding import class_prompt
from pixloom.training.augment import diff_augment, parse_policy
from pixloom.training.task import Phase, register_task
from pixloom.training.tasks.gan_losses import (
    discriminator_loss,
    generator_loss,
    mismatched,
    r1_penalty,
    swap_words,
)


@dataclass
class GanTaskOptions:
    """Options of the gan task (TrainConfig.task_options)."""

    model: Literal["mlp-gan", "dcgan", "stylegan"] = "stylegan"
    model_config: dict[str, Any] = field(default_factory=dict)  # fields of the family config
    text_encoder: str = "builtin"  # builtin | minilm | hf:PATH | none (unconditional)
    text_encoder_config: dict[str, Any] = field(default_factory=dict)  # builtin: dim, layers..
    vocab_size: int = 1024  # builtin: most frequent caption words kept (+ specials)
    vocab_captions: int = 20_000  # builtin: training captions scanned for the vocabulary
    g_lr: float = 0.002  # Adam learning rates
    d_lr: float = 0.002
    betas: list[float] = field(default_factory=lambda: [0.0, 0.99])  # StyleGAN2; DCGAN: 0.5, 0.999
    r1_gamma: float = 0.05  # R1 weight (0 disables the phase)
    r1_interval: int = 16  # lazy regularization interval
    mismatch_weight: float = 0.5  # matching-aware D term (0 disables)
    swap_weight: float = 0.0  # the same term on each real image's own caption with two
    # words swapped (hard negatives; 0 disables)
    augment: str = ""  # DiffAugment policy, e.g. "color,translation,cutout"
    style_mixing: float = 0.9  # stylegan: probability of mixing two ws in the G phase
    diversity_weight: float = 0.0  # mode-seeking term (MSGAN): same caption, different z
    class_conditional: bool = False  # prompt = the class id ("7") through the built-in encoder
    calibration_batches: int = 16  # BatchNorm generators: batches that re-estimate EMA stats
    preview_prompts: list[str] = field(default_factory=list)  # grid prompts (default: data)
    init_from: str | None = None  # trained generator of `model` to fine-tune (its config and
    # text encoder are kept, so model_config stays empty); the discriminator starts afresh
    critic: str | None = None  # trained image-text critic whose match loss on the fakes
    # joins the G loss (frozen; a run directory, checkpoint or shipped name)
    critic_weight: float = 1.0  # weight of that loss (with `critic`)

    def __post_init__(self) -> None:
        for name in ("g_lr", "d_lr"):
            require(getattr(self, name) > 0, f"task_options.{name}", getattr(self, name), "> 0")
        require(self.r1_gamma >= 0, "task_options.r1_gamma", self.r1_gamma, ">= 0")
        require(self.r1_interval >= 1, "task_options.r1_interval", self.r1_interval, ">= 1")
        for name in ("mismatch_weight", "swap_weight"):
            require(getattr(self, name) >= 0, f"task_options.{name}", getattr(self, name), ">= 0")
        require(
            0 <= self.style_mixing <= 1, "task_options.style_mixing", self.style_mixing, "0 to 1"
        )
        require(
            self.diversity_weight >= 0,
            "task_options.diversity_weight",
            self.diversity_weight,
            ">= 0",
        )
        require(
            self.calibration_batches >= 1,
            "task_options.calibration_batches",
            self.calibration_batches,
            ">= 1",
        )
        require(self.critic_weight > 0, "task_options.critic_weight", self.critic_weight, "> 0")
        require(self.init_from is None or not self.model_config, "task_options.model_config",
                self.model_config, "empty when task_options.init_from is set: the generator "
                "it names keeps its own")  # fmt: skip
        require(self.vocab_size >= 4, "task_options.vocab_size", self.vocab_size, ">= 4")
        require(not self.class_conditional or self.text_encoder == "builtin",
                "task_options.text_encoder", self.text_encoder,
                "'builtin' when class_conditional is true (it learns the class ids)")  # fmt: skip
        require(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            "task_options.betas",
            self.betas,
            "two Adam betas in [0, 1), e.g. [0.5, 0.999]",
        )
        parse_policy(self.augment)


def caption_sample(dataset_info: Any, count: int) -> list[str]:
    """Captions of the first `count` training items (the built-in vocabulary's source)."""
    from pixloom.data.registry import load_dataset

    dataset = load_dataset(dataset_info.name, split="train", resolution=dataset_info.resolution)
    captions = []
    for index in range(min(count, len(dataset))):
        if hasattr(dataset, "caption"):  # the shapes world captions without rendering
            captions.append(dataset.caption(index))
        else:
            captions.append(dataset[index]["caption"])
    return captions


def text_encoder_spec(options: GanTaskOptions, dataset_info: Any) -> dict[str, Any]:
    """The encoder spec stored in the generator config ({} when unconditional)."""
    if options.text_encoder == "none":
        return {}
    if options.text_encoder == "builtin":
        from pixloom.text.builtin import BuiltinTextConfig, build_vocabulary

        if options.class_conditional:
            classes = getattr(dataset_info, "num_classes", 0)
            require(classes > 0, "task_options.class_conditional", True,
                    f"false: dataset {dataset_info.name} has no classes")  # fmt: skip
            vocab = build_vocabulary([class_prompt(c) for c in range(classes)])
        else:
            require(
                getattr(dataset_info, "has_captions", False),
                "task_options.text_encoder",
                "builtin",
                f"'none': dataset {dataset_info.name} has no captions",
            )
            vocab = build_vocabulary(
                caption_sample(dataset_info, options.vocab_captions), max_size=options.vocab_size
            )
        fields = {**options.text_encoder_config, "vocab": vocab}
        config = config_from_dict(
            BuiltinTextConfig, fields, where="task_options.text_encoder_config"
        )
        return {"name": "builtin", **config_to_dict(config)}
    from pixloom.text.registry import load_text_encoder

    encoder = load_text_encoder(options.text_encoder, **options.text_encoder_config)
    return {"name": encoder.name, "dim": encoder.dim, "max_length": encoder.max_length}


def trained_generator(options: GanTaskOptions, dataset_info: Any) -> tuple[nn.Module, Any]:
    """The generator (training mode) and config that task_options.init_from names, checked
    against the options; a critic it holds (export --critic) is dropped: it judges drafts."""
    import dataclasses

    from pixloom.training.checkpointing import load_trained

    generator = load_trained(options.init_from, "init_from", [options.model])[0]
    config = generator.config
    saved = config.text_encoder.get("name", "none") if config.text_encoder else "none"
    wanted = "builtin" if options.class_conditional else options.text_encoder
    require(saved == wanted, "task_options.text_encoder", options.text_encoder,
            f"{saved!r}, the encoder of the init_from generator")  # fmt: skip
    require(config.resolution == dataset_info.resolution, "resolution", dataset_info.resolution,
            f"{config.resolution}, the side of the init_from generator")  # fmt: skip
    generator.config = dataclasses.replace(config, critic={})
    generator.critic = None
    return generator.train(), generator.config


def frozen_critic(name_or_path: str) -> tuple[nn.Module, str]:
    """The critic task_options.critic names (eval mode, no gradients) and its sha256."""
    from pixloom.training.checkpointing import load_trained

    critic, checkpoint = load_trained(name_or_path, "critic", ["critic"])
    return critic.eval().requires_grad_(False), checkpoint.sha256


class GanTask:
    """Phases g, d and (lazy) r1 over a generator/discriminator pair of one family."""

    ema_module = "generator"

    def __init__(self, options: GanTaskOptions, dataset_info: Any):
        self.options = options
        if options.init_from is not None:
            self.generator, self.model_config = trained_generator(options, dataset_info)
            spec = self.model_config.text_encoder
        else:
            spec = text_encoder_spec(options, dataset_info)
            entry = get_model_entry(options.model)
            fields = {
                **options.model_config,
                "resolution": dataset_info.resolution,
                "text_encoder": spec,
            }
            self.model_config = config_from_dict(
                entry.config_cls, fields, where="task_options.model_config"
            )
            self.generator = build_model(options.model, self.model_config)
        self.discriminator = build_model(f"{options.model}-discriminator", self.model_config)
        from pixloom.text.registry import frozen_encoder

        self.frozen = frozen_encoder(spec)
        self.preview_prompts = list(options.preview_prompts)
        self.dataset_info = dataset_info
        self._calibration_captions: list[str] | None = None
        self.critic, self.critic_sha256 = (None, None)  # built last: the same seed gives
        # the same discriminator with or without a critic
        if options.critic is not None:
            require(bool(spec), "task_options.critic", options.critic,
                    "null for an unconditional generator (a critic judges captions)")  # fmt: skip
            self.critic, self.critic_sha256 = frozen_critic(options.critic)

    @property
    def trains_encoder(self) -> bool:
        """True when the generator holds a built-in text encoder that this run trains."""
        return getattr(self.generator, "text_encoder", None) is not None

    def modules(self) -> dict[str, nn.Module]:
        """Generator and discriminator; a built-in encoder (inside the generator, so it is
        exported and averaged with it) is also listed alone, for the D phase to train."""
        modules = {"generator": self.generator, "discriminator": self.discriminator}
        if self.trains_encoder:
            modules["text_encoder"] = self.generator.text_encoder
        return modules

    def phases(self) -> list[Phase]:
        """g, d, and r1 every r1_interval steps (Adam with the configured betas)."""
        options, betas = self.options, tuple(self.options.betas)
        # A built-in encoder learns on the D side only: the matching-aware D loss rewards
        # embeddings that tell captions apart, while the G loss would reward embeddings that
        # hide the caption from D (trained with G, every caption collapsed to one image).
        critic = ["discriminator", "text_encoder"] if self.trains_encoder else ["discriminator"]
        phases = [
            Phase("g", ["generator"], options.g_lr, betas=betas),
            Phase("d", critic, options.d_lr, betas=betas),
        ]
        if options.r1_gamma > 0:
            phases.append(
                Phase(
                    "r1", ["discriminator"], options.d_lr, betas=betas, interval=options.r1_interval
                )
            )
        return phases

    def embed(self, generator: nn.Module, captions: list[str], device: torch.device):
        """TextEmbedding of the captions on `device` (None when unconditional)."""
        if not self.model_config.text_encoder:
            return None
        from pixloom.text.registry import encode_captions

        return encode_captions(generator.text_encoder, self.frozen, captions, device)

    def generate(self, cond: Any, z: torch.Tensor, mix: bool) -> torch.Tensor:
        """Fake images for latents `z` (style mixing for stylegan when `mix`)."""
        batch, device = z.shape[0], z.device
        if self.options.model != "stylegan":
            return self.generator(z, None, cond)
        generator = self.generator
        ws = generator.map(z, cond)[:, None].expand(-1, self.model_config.num_ws, -1)
        if mix and self.options.style_mixing > 0:
            other = generator.map(torch.randn_like(z), cond)[:, None].expand_as(ws)
            crossover = torch.randint(1, self.model_config.num_ws, (batch,), device=device)
            use = torch.rand(batch, device=device) < self.options.style_mixing
            crossover = torch.where(use, crossover, torch.full_like(crossover, ws.shape[1]))
            ws = style_mix(ws, other, crossover)
        return generator.synthesize(ws, cond)

    def prompts(self, batch: dict) -> list[str]:
        """What each real image is conditioned on: its caption, or its class id as a word."""
        if self.options.class_conditional:
            return [class_prompt(label) for label in batch["label"]]
        return list(batch["caption"])

    def loss(self, phase: str, batch: dict, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of `phase` on a batch of real images and captions."""
        real, device = batch["image"], batch["image"].device
        count, policy = real.shape[0], self.options.augment
        prompts = self.prompts(batch)
        if not self.preview_prompts and self.model_config.text_encoder:
            self.preview_prompts = prompts[:8]
        if phase == "g":
            return self.generator_phase(prompts, count, device)
        with torch.set_grad_enabled(phase == "d" and self.trains_encoder):
            cond = self.embed(self.generator, prompts, device)
        if phase == "d":
            with torch.no_grad():
                fake = self.generate(cond, self.latents(count, device), mix=True)
            real_logits = self.discriminator(diff_augment(real, policy), None, cond)
            fake_logits = self.discriminator(diff_augment(fake, policy), None, cond)
            wrong = None
            if cond is not None and self.options.mismatch_weight > 0 and count > 1:
                wrong_cond = cond.select(mismatched(count, device))
                wrong = self.discriminator(diff_augment(real, policy), None, wrong_cond)
            swapped = self.swapped_logits(real, prompts, device)
            loss = discriminator_loss(
                real_logits, fake_logits, wrong, mismatch_weight=self.options.mismatch_weight,
                swap_logits=swapped, swap_weight=self.options.swap_weight,
            )  # fmt: skip
            metrics = {
                "real": float(real_logits.detach().float().mean()),
                "fake": float(fake_logits.detach().float().mean()),
            }
            return loss, metrics
        return self.r1_loss(real, cond)

    def swapped_logits(self, real: torch.Tensor, prompts: list[str], device: torch.device):
        """D's logits for the real images whose captions a word swap changes, each paired
        with its swapped caption (None when the term is off or unconditional)."""
        if self.options.swap_weight == 0 or not self.model_config.text_encoder:
            return None
        swaps = [swap_words(prompt) for prompt in prompts]
        rows = [i for i, swap in enumerate(swaps) if swap is not None]
        if len(rows) < 2:  # the projection head's BatchNorm needs two rows, as `mismatched`
            return None
        with torch.set_grad_enabled(self.trains_encoder):
            cond = self.embed(self.generator, [swaps[i] for i in rows], device)
        images = real[torch.tensor(rows, device=device)]
        return self.discriminator(diff_augment(images, self.options.augment), None, cond)

    def latents(self, count: int, device: torch.device) -> torch.Tensor:
        """Standard normal latents (B, z_dim)."""
        return torch.randn(count, self.model_config.z_dim, device=device)

    def generator_phase(self, captions: list[str], count: int, device: torch.device):
        """Non-saturating G loss, plus the mode-seeking term of MSGAN (Mao et al. 2019):
        the first half of the captions is drawn twice with different z and the generator is
        rewarded for images that differ as much as their latents do (conditional GANs
        otherwise tend to ignore z and draw one image per caption)."""
        half = count // 2
        diverse = self.options.diversity_weight > 0 and half >= 1
        if diverse:
            captions = captions[:half] * 2
        with torch.no_grad():  # the encoder learns in the D phase (see phases)
            cond = self.embed(self.generator, captions, device)
        z = self.latents(len(captions), device)
        fake = self.generate(cond, z, mix=True)
        loss = generator_loss(
            self.discriminator(diff_augment(fake, self.options.augment), None, cond)
        )
        metrics = {}
        if self.critic is not None:  # the judge's "does not match" loss on the fakes
            logits = self.critic.to(device)(fake, captions)
            loss = loss + self.options.critic_weight * F.softplus(-logits).mean()
            metrics["critic"] = float((logits.detach() > 0).float().mean())
        if not diverse:
            return loss, metrics
        image_gap = (fake[:half] - fake[half:]).float().abs().mean((1, 2, 3))
        latent_gap = (z[:half] - z[half:]).abs().mean(1)
        ratio = (image_gap / latent_gap).mean()
        loss = loss + self.options.diversity_weight / (ratio + 1e-5)
        return loss, {**metrics, "diversity": float(ratio.detach())}

    @torch.no_grad()
    def prepare_inference(self, generator: nn.Module) -> None:
        """Re-estimate a BatchNorm generator's statistics for its (EMA) weights on
        `calibration_batches` batches of training captions with fixed latents."""
        from pixloom.training.ema import recalibrate_batch_norm

        def run_batches() -> None:
            device, batch = next(generator.parameters()).device, 64
            count = batch * self.options.calibration_batches
            captions = [""] * count
            if self.model_config.text_encoder:
                if self._calibration_captions is None and self.options.class_conditional:
                    classes = self.dataset_info.num_classes
                    self._calibration_captions = [class_prompt(i % classes) for i in range(count)]
                elif self._calibration_captions is None:
                    self._calibration_captions = caption_sample(self.dataset_info, count)
                captions = self._calibration_captions
            seeded = torch.Generator().manual_seed(0)
            for start in range(0, count, batch):
                chunk = captions[start : start + batch]
                z = torch.randn(len(chunk), self.model_config.z_dim, generator=seeded).to(device)
                generator(z, None, self.embed(generator, chunk, device))

        recalibrate_batch_norm(generator, run_batches)

    def r1_loss(self, real: torch.Tensor, cond: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """Lazy R1 in fp32 (double backward), scaled by the interval as in StyleGAN2."""
        with torch.autocast(real.device.type, enabled=False):
            real = diff_augment(real.float(), self.options.augment).detach().requires_grad_(True)
            if cond is not None:
                cond = type(cond)(cond.tokens.float(), cond.mask, cond.pooled.float())
            penalty = r1_penalty(self.discriminator(real, None, cond), real)
        scale = self.options.r1_gamma / 2 * self.options.r1_interval
        return penalty * scale, {"penalty": float(penalty.detach())}

    def export_config(self) -> dict:
        """The generator's family and config (text encoder spec and vocabulary included)."""
        return {"family": self.options.model, "model": config_to_dict(self.model_config)}

    def state_dict(self) -> dict:
        """The preview prompts (so a resumed run draws the same grids) and the critic's
        sha256 (so it resumes with the judge it started with)."""
        return {"preview_prompts": list(self.preview_prompts), "critic": self.critic_sha256}

    def load_state_dict(self, state: dict) -> None:
        """Restore the preview prompts; refuse a critic other than the run's."""
        started = state.get("critic")
        if started != self.critic_sha256:
            raise CheckpointError(
                f"task_options.critic: the run started with critic sha256 {started}, and "
                f"{self.options.critic!r} is {self.critic_sha256}; resume with the same critic"
            )
        self.preview_prompts = list(state.get("preview_prompts", []))

    def sample_images(self, modules: dict[str, nn.Module], step: int) -> list | None:
        """One image per preview prompt (or 8 unconditional ones), seeds 0.., EMA weights."""
        from pixloom.pipelines.text_to_image import draw_latents, tensor_to_images

        generator = modules["generator"]
        device = next(generator.parameters()).device
        prompts = self.preview_prompts or [""] * 8
        cond = self.embed(generator, prompts, device)
        z = draw_latents(len(prompts), self.model_config.z_dim, seed=0).to(device)
        extra = {"noise_mode": "const"} if self.options.model == "stylegan" else {}
        return tensor_to_images(generator(z, None, cond, **extra))


@register_task("gan")
def make_gan_task(options: dict, dataset_info: Any) -> GanTask:
    """Build the GAN task from its options (unknown options are refused by name)."""
    return GanTask(config_from_dict(GanTaskOptions, options, where="task_options"), dataset_info)
