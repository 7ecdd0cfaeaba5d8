"""An image-text critic: how likely an image matches a caption, read jointly.

A small conv stem turns the image into a grid of tokens; the built-in text encoder turns
the caption into word states; a few transformer layers read both together (one sequence,
[CLS] first) and a linear head on [CLS] gives the logit of "this caption describes this
image", as the image-text matching heads of ALBEF and BLIP (Li et al. 2021, 2022). As in
ALBEF, a contrastive term on pooled image and caption embeddings (`embeddings`) trains
alongside, so that the image features carry what the words name before the fusion layers
have to find it. Joint
attention, not two pooled vectors compared, because binding ("a red circle and a blue
square" against the swapped colours) needs the words to find their objects.

It is trained from captions alone (task "critic", pixloom.training.tasks.critic), and its
use is to judge drafts: a token model's `best_of` keeps the draft the critic rates highest
when the model file holds one (DALL-E reranked its samples with CLIP the same way).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from pixloom.data.transforms import resize_square
from pixloom.errors import require
from pixloom.models.registry import register_model
from pixloom.models.scene_parser import conv_stages
from pixloom.text.builtin import encoder_layer


@dataclass
class CriticConfig:
    text_encoder: dict[str, Any] = field(default_factory=dict)  # a "builtin" spec (its vocab)
    resolution: int = 32  # the network's input side; images are resized to it
    widths: list[int] = field(default_factory=lambda: [32, 64, 128])  # conv stages; each
    # after the first halves the side (32 px -> 8 x 8 image tokens with three stages)
    dim: int = 128  # width of the joint sequence
    depth: int = 2  # joint transformer layers
    heads: int = 4
    embed_dim: int = 64  # width of the contrastive image and caption embeddings (training)

    def __post_init__(self) -> None:
        require(self.text_encoder.get("name") == "builtin", "model.text_encoder",
                self.text_encoder.get("name"), "a builtin text encoder spec")  # fmt: skip
        require(self.resolution >= 8, "model.resolution", self.resolution, "an integer >= 8")
        require(len(self.widths) >= 1 and all(w >= 1 for w in self.widths), "model.widths",
                self.widths, "a non-empty list of positive channel counts")  # fmt: skip
        side = self.resolution // 2 ** (len(self.widths) - 1)
        require(side >= 1, "model.widths", self.widths, f"at most a halving per stage of "
                f"{self.resolution} px")  # fmt: skip
        require(self.depth >= 1, "model.depth", self.depth, "an integer >= 1")
        require(self.heads >= 1 and self.dim % self.heads == 0, "model.heads", self.heads,
                f"a divisor of dim={self.dim}")  # fmt: skip
        require(self.embed_dim >= 1, "model.embed_dim", self.embed_dim, "an integer >= 1")

    @property
    def grid_side(self) -> int:
        """Image tokens per side."""
        return -(-self.resolution // 2 ** (len(self.widths) - 1))


class ImageTextCritic(nn.Module):
    """critic(images (B, 3, R, R) in [-1, 1], prompts) -> match logits (B,)."""

    def __init__(self, config: CriticConfig):
        super().__init__()
        from pixloom.text.registry import load_text_encoder

        self.config = config
        self.stages = conv_stages(config.widths)
        self.image_proj = nn.Linear(config.widths[-1], config.dim)
        self.image_position = nn.Parameter(torch.zeros(config.grid_side**2, config.dim))
        self.text_encoder = load_text_encoder(config.text_encoder)
        self.text_proj = nn.Linear(self.text_encoder.dim, config.dim)
        self.cls = nn.Parameter(torch.zeros(config.dim))
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(config.dim, config.heads, 4 * config.dim, dropout=0.0,
                                       batch_first=True, norm_first=True)
            for _ in range(config.depth)
        )  # fmt: skip
        self.norm = nn.LayerNorm(config.dim)
        self.head = nn.Linear(config.dim, 1)
        self.image_embed = nn.Linear(config.dim, config.embed_dim)
        self.text_embed = nn.Linear(self.text_encoder.dim, config.embed_dim)
        nn.init.normal_(self.image_position, std=0.02)
        nn.init.normal_(self.cls, std=0.02)

    def image_tokens(self, images: Tensor) -> Tensor:
        """(B, 3, R, R) -> (B, cells, dim): the conv grid, one token per cell."""
        x = resize_square(images, self.config.resolution)
        for stage in self.stages:
            x = stage(x)
        x = self.image_proj(x.flatten(2).transpose(1, 2))  # (B, cells, dim)
        return x + self.image_position

    def embeddings(self, image_tokens: Tensor, prompts: list[str]) -> tuple[Tensor, Tensor]:
        """Unit-length image (B, E) and caption (B, E) embeddings, compared before fusion: the
        contrastive term that grounds words in the image features first (ALBEF's "align before
        fuse", Li et al. 2021)."""
        text = self.text_encoder.encode(list(prompts))
        image = self.image_embed(image_tokens.mean(1)).float()
        caption = self.text_embed(text.pooled.to(image_tokens.dtype)).float()
        return F.normalize(image, dim=-1), F.normalize(caption, dim=-1)

    def joint(self, image_tokens: Tensor, prompts: list[str]) -> Tensor:
        """Image tokens (B, cells, dim) and B prompts -> logits (B,)."""
        require(len(prompts) == image_tokens.shape[0], "prompts", len(prompts),
                f"{image_tokens.shape[0]} prompts, one per image")  # fmt: skip
        text = self.text_encoder.encode(list(prompts))
        words = self.text_proj(text.tokens.to(image_tokens.dtype))  # (B, T, dim)
        batch = image_tokens.shape[0]
        cls = self.cls.to(image_tokens.dtype).expand(batch, 1, -1)
        x = torch.cat([cls, words, image_tokens], 1)
        mask = torch.cat([torch.ones(batch, 1, dtype=torch.bool, device=x.device),
                          text.mask.to(x.device),
                          torch.ones(image_tokens.shape[:2], dtype=torch.bool, device=x.device)],
                         1)  # fmt: skip
        for block in self.blocks:
            x = encoder_layer(block, x, mask)
        return self.head(self.norm(x[:, 0]))[:, 0].float()

    def forward(self, images: Tensor, prompts: list[str]) -> Tensor:
        """Match logits (B,) of images (B, 3, R, R) in [-1, 1] against B prompts."""
        return self.joint(self.image_tokens(images), prompts)


def make_critic(config: dict[str, Any]) -> ImageTextCritic | None:
    """The frozen critic a generator's config names (`critic`, put there by `pixloom export
    --critic`), in eval mode; None for an empty config."""
    if not config:
        return None
    from pixloom.models.registry import build_model

    return build_model("critic", config).eval().requires_grad_(False)


@register_model("critic", CriticConfig)
def build_critic(config: CriticConfig) -> ImageTextCritic:
    """Image-text matching critic (joint attention over words and image cells)."""
    return ImageTextCritic(config)
