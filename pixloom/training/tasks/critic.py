"""Task "critic": train the image-text critic (pixloom.models.critic) on captioned images.

Each image is read against its own caption (a match), another image's caption and
`hard_negatives` near-miss edits of its own caption (pixloom.data.shapes.negatives), all
mismatches. Loss: binary cross-entropy on the match logits, the mismatches weighted so that
they count as much as the matches together. Renders get the oracle's generator-like
artifacts, so that the critic reads generated images as it reads clean ones. Nothing but the
captions supervises it: no scene labels, no oracle.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from pixloom.configs import config_from_dict, config_to_dict
from pixloom.data.artifacts import ArtifactOptions, apply_artifacts
from pixloom.data.shapes.negatives import EDITS, hard_negative
from pixloom.data.shapes.world import DEFAULT_HELDOUT_PAIRS, parse_pairs
from pixloom.errors import DataError, require
from pixloom.models.critic import CriticConfig, ImageTextCritic
from pixloom.training.checkpointing import load_trained
from pixloom.training.task import Phase, register_task
from pixloom.training.tasks.gan import text_encoder_spec


@dataclass
class CriticTaskOptions:
    model_config: dict[str, Any] = field(default_factory=dict)  # CriticConfig fields
    text_encoder_config: dict[str, Any] = field(default_factory=dict)  # builtin: dim, layers..
    vocab_size: int = 1024  # most frequent caption words kept (+ specials)
    vocab_captions: int = 20_000  # training captions scanned for the vocabulary
    hard_negatives: int = 2  # edited captions per image
    edit_weights: dict[str, float] = field(default_factory=dict)  # how often each edit kind
    # (pixloom.data.shapes.negatives.EDITS) comes first where it applies; 1 where unnamed
    contrastive_weight: float = 1.0  # weight of the image-caption contrastive (InfoNCE) term
    temperature: float = 0.07  # of the contrastive term's softmax (CLIP's initial value)
    avoid_pairs: list[str] = field(default_factory=lambda: list(DEFAULT_HELDOUT_PAIRS))
    # colour-shape pairs no edit may name (the dataset's held-out pairs)
    init_from: str | None = None  # a trained critic to go on from: its config, vocabulary
    # and weights; model_config may only add what its config lacks (e.g. place_words), and
    # the modules that adds start as their own initialisation leaves them
    lr: float = 1e-3  # AdamW
    weight_decay: float = 0.01
    artifacts: ArtifactOptions = field(default_factory=ArtifactOptions)

    def __post_init__(self) -> None:
        require(self.hard_negatives >= 0, "task_options.hard_negatives", self.hard_negatives,
                "an integer >= 0")  # fmt: skip
        require(self.lr > 0, "task_options.lr", self.lr, "> 0")
        require(self.contrastive_weight >= 0, "task_options.contrastive_weight",
                self.contrastive_weight, "a number >= 0")  # fmt: skip
        require(self.temperature > 0, "task_options.temperature", self.temperature, "> 0")
        parse_pairs(self.avoid_pairs, "task_options.avoid_pairs")
        for name, weight in self.edit_weights.items():
            require(name in EDITS, "task_options.edit_weights", name, f"one of {sorted(EDITS)}")
            require(isinstance(weight, (int, float)) and weight >= 0,
                    f"task_options.edit_weights.{name}", weight, "a number >= 0")  # fmt: skip


def contrastive_loss(
    image: torch.Tensor, caption: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of unit embeddings (B, E): image i belongs to caption
    i (CLIP, Radford et al. 2021)."""
    logits = image @ caption.T / temperature  # (B, B)
    return (F.cross_entropy(logits, torch.arange(len(image), device=logits.device))
            + F.cross_entropy(logits.T, torch.arange(len(image), device=logits.device))) / 2  # fmt: skip


def critic_loss(logits: torch.Tensor, count: int) -> tuple[torch.Tensor, dict[str, float]]:
    """Logits (count * C,): the matches first, then C - 1 blocks of mismatches."""
    candidates = logits.shape[0] // count
    target = torch.zeros_like(logits)
    target[:count] = 1
    weight = torch.full_like(logits, 1 / max(candidates - 1, 1))
    weight[:count] = 1
    loss = F.binary_cross_entropy_with_logits(logits, target, weight=weight) * candidates / 2
    with torch.no_grad():
        blocks = logits.detach().view(candidates, count)
        stats = {"match": torch.sigmoid(blocks[0]).mean().item()}
        if candidates > 1:
            stats["beats_other"] = (blocks[0] > blocks[1]).float().mean().item()
        if candidates > 2:
            stats["beats_edit"] = (blocks[0][None] > blocks[2:]).float().mean().item()
    return loss, stats


class CriticTask:
    """One phase: AdamW on the critic."""

    ema_module = "critic"

    def __init__(self, options: CriticTaskOptions, dataset_info: Any):
        require(getattr(dataset_info, "has_captions", False), "data", dataset_info.name,
                "a captioned dataset")  # fmt: skip
        if not str(dataset_info.name).startswith("shapes"):
            raise DataError(f"task critic edits shapes-world captions, not {dataset_info.name!r}")
        self.options = options
        self.avoid = parse_pairs(options.avoid_pairs, "task_options.avoid_pairs")
        spec_options = SimpleNamespace(
            text_encoder="builtin", class_conditional=False, vocab_size=options.vocab_size,
            vocab_captions=options.vocab_captions, text_encoder_config=options.text_encoder_config,
        )  # fmt: skip
        if options.init_from is None:
            fields = {**options.model_config, "text_encoder": text_encoder_spec(spec_options, dataset_info)}  # fmt: skip
        else:
            trained = load_trained(options.init_from, "init_from", ["critic"])[0]
            require(not options.text_encoder_config, "task_options.text_encoder_config",
                    options.text_encoder_config, "empty when task_options.init_from is set: "
                    "the trained critic's text encoder is kept")  # fmt: skip
            fields = {**config_to_dict(trained.config), **options.model_config}
        self.model_config = config_from_dict(
            CriticConfig, fields, where="task_options.model_config"
        )
        self.critic = ImageTextCritic(self.model_config)
        if options.init_from is not None:
            self._start_from(trained)

    def _start_from(self, trained: nn.Module) -> None:
        """Copy a trained critic's weights; only modules model_config added may lack them."""
        own, saved = self.critic.state_dict(), trained.state_dict()
        changed = sorted(k for k in saved if k not in own or own[k].shape != saved[k].shape)
        require(not changed, "task_options.model_config", self.options.model_config,
                f"fields that keep the init_from critic's weights ({', '.join(changed[:3])} "
                "would change)")  # fmt: skip
        self.critic.load_state_dict(saved, strict=False)

    def modules(self) -> dict[str, nn.Module]:
        """The critic."""
        return {"critic": self.critic}

    def phases(self) -> list[Phase]:
        """A single phase."""
        return [Phase("match", ["critic"], self.options.lr, weight_decay=self.options.weight_decay)]

    def candidates(self, captions: list[str], step: int) -> list[str]:
        """The captions, then another image's (the next one's), then the edits, block by block."""
        rng = random.Random(step)
        weights = self.options.edit_weights or None  # None: the unweighted order of old runs
        out = list(captions) + captions[1:] + captions[:1]
        for _ in range(self.options.hard_negatives):
            for i, caption in enumerate(captions):
                edited = hard_negative(caption, rng, self.avoid, weights)
                out.append(edited if edited is not None else captions[(i + 1) % len(captions)])
        return out

    def loss(self, phase: str, batch: dict, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Every image against its caption and its mismatches, images encoded once."""
        captions = list(batch["caption"])
        images = apply_artifacts(batch["image"], self.options.artifacts)
        tokens = self.critic.image_tokens(images)  # (B, cells, dim)
        texts = self.candidates(captions, step)
        blocks = len(texts) // len(captions)
        logits = self.critic.joint(torch.cat([tokens] * blocks), texts)
        loss, stats = critic_loss(logits, len(captions))
        if self.options.contrastive_weight > 0:
            image, caption = self.critic.embeddings(tokens, captions)
            aligned = contrastive_loss(image, caption, self.options.temperature)
            loss = loss + self.options.contrastive_weight * aligned
            stats["contrastive"] = aligned.item()
        return loss, stats

    def export_config(self) -> dict:
        """Family and model config of the inference checkpoint."""
        return {"family": "critic", "model": config_to_dict(self.model_config)}

    def state_dict(self) -> dict:
        """No state beyond the network."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Nothing to restore."""

    def sample_images(self, modules: dict[str, nn.Module], step: int) -> list | None:
        """A critic draws nothing."""
        return None


@register_task("critic")
def make_critic_task(options: dict, dataset_info: Any) -> CriticTask:
    """Build the task; unknown options are refused by name."""
    return CriticTask(
        config_from_dict(CriticTaskOptions, options, where="task_options"), dataset_info
    )
