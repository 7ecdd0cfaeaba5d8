"""An image-text critic: how likely an image matches a caption, read jointly.

A small conv stem turns the image into a grid of tokens; the built-in text encoder turns
the caption into word states; a few transformer layers read both together (one sequence,
[CLS] first) and a linear head on [CLS] gives the logit of "this caption describes this
image", as the image-text matching heads of ALBEF and BLIP (Li et al. 2021, 2022). As in
ALBEF, a contrastive term on pooled image and caption embeddings (`embeddings`) trains
alongside, so that the image features carry what the words name before the fusion layers
have to find it. Joint
attention, not two pooled vectors compared, because binding ("a red circle and a blue
square" against the swapped colours) needs the words to find their objects. Two fusions:
"joint" reads [CLS], the words and the cells as one sequence; "cross" is ALBEF's own, the
words reading each other and then the cells (cross-attention) in every layer, so the cells
are encoded once per image however many captions it is read against.

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
from pixloom.text.builtin import attend, encoder_layer

FUSIONS = ("joint", "cross")


@dataclass
class CriticConfig:
    text_encoder: dict[str, Any] = field(default_factory=dict)  # a "builtin" spec (its vocab)
    resolution: int = 32  # the network's input side; images are resized to it
    widths: list[int] = field(default_factory=lambda: [32, 64, 128])  # conv stages; each
    # after the first halves the side (32 px -> 8 x 8 image tokens with three stages)
    dim: int = 128  # width of the joint sequence
    depth: int = 2  # fusion transformer layers
    heads: int = 4
    embed_dim: int = 64  # width of the contrastive image and caption embeddings (training)
    fusion: str = "joint"  # "joint": [CLS], words and cells in one sequence; "cross": [CLS]
    # and the words read each other and then the cells in every layer (ALBEF's fusion encoder),
    # so the cells pass through `image_depth` layers once per image, not once per caption
    image_depth: int = 0  # self-attention layers over the cells before fusion ("cross" only)
    grounding: bool = False  # add a phrase-cell grounding score to the logit: each word with
    # its neighbours, best cosine over the cells, a learned weighted mean over the words
    place_words: bool = False  # add a placement score to the logit: where each word's
    # grounding unit is found (the cells' centres averaged by the softmax of the unit's
    # cosines), dotted with a direction its text state gives, summed over the words, so that
    # "a circle left of a square" can ask the circle's x to be low and the square's high
    # (needs grounding)

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
        require(self.fusion in FUSIONS, "model.fusion", self.fusion, f"one of {FUSIONS}")
        require(self.image_depth >= 0 and (self.image_depth == 0 or self.fusion == "cross"),
                "model.image_depth", self.image_depth,
                'an integer >= 0, and 0 unless fusion is "cross"')  # fmt: skip
        require(not self.place_words or self.grounding, "model.place_words",
                self.place_words, "false unless grounding is true: words are placed by "
                "their grounding units")  # fmt: skip

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
        layer = (
            nn.TransformerEncoderLayer if config.fusion == "joint" else nn.TransformerDecoderLayer
        )
        self.blocks = nn.ModuleList(
            layer(config.dim, config.heads, 4 * config.dim, dropout=0.0, batch_first=True,
                  norm_first=True)
            for _ in range(config.depth)
        )  # fmt: skip
        self.image_blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(config.dim, config.heads, 4 * config.dim, dropout=0.0,
                                       batch_first=True, norm_first=True)
            for _ in range(config.image_depth)
        )  # fmt: skip
        if config.fusion == "cross":
            self.cell_norm = nn.LayerNorm(config.dim)  # the cells as every fusion layer reads them
        self.norm = nn.LayerNorm(config.dim)
        self.head = nn.Linear(config.dim, 1)
        if config.grounding:
            # a unit per word from it and its two neighbours, so "red circle" is one unit
            self.ground_words = nn.Conv1d(self.text_encoder.dim, config.embed_dim, 3, padding=1)
            self.ground_cells = nn.Linear(config.dim, config.embed_dim)
            self.ground_gate = nn.Linear(self.text_encoder.dim, 1)  # how much each word counts
            self.ground_scale = nn.Parameter(torch.tensor(10.0))
        if config.place_words:  # zero at first: a critic it is added to keeps its logits
            self.word_direction = nn.Linear(self.text_encoder.dim, 2)
            nn.init.zeros_(self.word_direction.weight), nn.init.zeros_(self.word_direction.bias)
            side = config.grid_side
            centres = (torch.arange(side, dtype=torch.float32) + 0.5) / side * 2 - 1
            y, x = torch.meshgrid(centres, centres, indexing="ij")
            centres = torch.stack([x, y], -1).view(-1, 2)  # (cells, (x, y)) in [-1, 1]
            self.register_buffer("cell_centres", centres, persistent=False)
        self.image_embed = nn.Linear(config.dim, config.embed_dim)
        self.text_embed = nn.Linear(self.text_encoder.dim, config.embed_dim)
        nn.init.normal_(self.image_position, std=0.02)
        nn.init.normal_(self.cls, std=0.02)

    def image_tokens(self, images: Tensor) -> Tensor:
        """(B, 3, R, R) -> (B, cells, dim): the conv grid, one token per cell (read by the
        `image_depth` cell layers, if any)."""
        x = resize_square(images, self.config.resolution)
        for stage in self.stages:
            x = stage(x)
        x = self.image_proj(x.flatten(2).transpose(1, 2)) + self.image_position  # (B, cells, dim)
        every = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        for block in self.image_blocks:
            x = encoder_layer(block, x, every)
        return x

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
        if self.config.grounding:
            units, gate = self.grounding_units(image_tokens, text.tokens, text.mask)
        batch = image_tokens.shape[0]
        cls = self.cls.to(image_tokens.dtype).expand(batch, 1, -1)
        start = torch.ones(batch, 1, dtype=torch.bool, device=words.device)
        if self.config.fusion == "cross":
            x, mask = torch.cat([cls, words], 1), torch.cat([start, text.mask.to(words.device)], 1)
            cells = self.cell_norm(image_tokens)
            for block in self.blocks:
                x = x + attend(block.self_attn, block.norm1(x), mask)
                x = x + attend(block.multihead_attn, block.norm2(x), context=cells)
                x = x + block.linear2(block.activation(block.linear1(block.norm3(x))))
        else:
            x = torch.cat([cls, words, image_tokens], 1)
            every = torch.ones(image_tokens.shape[:2], dtype=torch.bool, device=x.device)
            mask = torch.cat([start, text.mask.to(x.device), every], 1)
            for block in self.blocks:
                x = encoder_layer(block, x, mask)
        logits = self.head(self.norm(x[:, 0]))[:, 0].float()
        if self.config.grounding:
            logits = logits + self.grounding_score(units, gate)
        if self.config.place_words:
            found = (self.ground_scale * units).softmax(-1) @ self.cell_centres  # (B, T, (x, y))
            direction = self.word_direction(text.tokens.to(image_tokens.dtype)).float()
            placed = (direction * found).sum(-1) * text.mask.to(found.device)  # (B, T)
            logits = logits + placed.sum(-1)
        return logits

    def grounding(self, image_tokens: Tensor, words: Tensor, mask: Tensor) -> Tensor:
        """The grounding score (B,) of image tokens (B, cells, dim) against word states
        (B, T, D) with their mask (B, T) (grounding_units)."""
        return self.grounding_score(*self.grounding_units(image_tokens, words, mask))

    def grounding_score(self, units: Tensor, gate: Tensor) -> Tensor:
        """Each unit's best cosine, averaged with the word weights and scaled: (B,)."""
        return self.ground_scale * (gate.softmax(-1) * units.amax(-1)).sum(-1)

    def grounding_units(
        self, image_tokens: Tensor, words: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Image tokens (B, cells, dim), word states (B, T, D) and their mask (B, T) -> the
        cosines (B, T, cells) of each word's unit with every cell, and the word weights' logits
        (B, T). A unit is a word read with its two neighbours ("red circle" is one); the
        grounding score is the units' best cosines, averaged with the word weights and scaled
        (after FILIP's late interaction, Yao et al. 2021). One cell has to answer to the whole
        unit, so "a red circle" is not met by a red square and a blue circle, as it is by a
        pooled comparison or by word states that have not learned their context."""
        mask = mask.to(image_tokens.device)
        states = words.to(image_tokens.dtype) * mask[..., None]  # padding reads as zeros
        units = self.ground_words(states.transpose(1, 2)).transpose(1, 2)  # (B, T, E)
        units = F.normalize(units.float(), dim=-1)
        cells = F.normalize(self.ground_cells(image_tokens).float(), dim=-1)
        gate = self.ground_gate(states)[..., 0].float().masked_fill(~mask, -1e4)
        return units @ cells.transpose(1, 2), gate

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
