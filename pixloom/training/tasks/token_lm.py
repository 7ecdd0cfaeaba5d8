"""Task "token-lm": a language model over image tokens (families token-ar and maskgit).

Images become token grids through a frozen, trained "vq" tokenizer (encoded under no_grad
inside loss(), once per image on the CPU: CodeCache); the transformer learns them like text.
Raster mode: next-token cross-entropy in raster order (Esser et al. 2021). MaskGIT mode (Chang et al. 2022): a mask ratio
cos(pi/2 r), r ~ U(0, 1), per image; cross-entropy on the masked cells only. Prompts are
dropped to the null prefix with probability `prompt_dropout` so that classifier-free guidance
works (Ho & Salimans 2022). The tokenizer is a frozen submodule of the transformer, so the
exported checkpoint is self-contained; the engine keeps the EMA of the transformer.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from pixloom.configs import config_from_dict, config_to_dict
from pixloom.errors import require
from pixloom.models.registry import build_model
from pixloom.models.token_transformer import TokenCondition, TokenTransformerConfig
from pixloom.training.task import Phase, register_task
from pixloom.training.tasks.gan import text_encoder_spec

FAMILY = {"raster": "token-ar", "maskgit": "maskgit"}


@dataclass
class TokenLmTaskOptions:
    """Options of the token-lm task (TrainConfig.task_options)."""

    mode: Literal["raster", "maskgit"] = "raster"
    tokenizer: str = ""  # "vq" checkpoint or token model (its tokenizer): dir, run or name
    model_config: dict[str, Any] = field(default_factory=dict)  # TokenTransformerConfig fields
    text_encoder: str = "builtin"  # builtin | minilm | hf:PATH | none (unconditional)
    text_encoder_config: dict[str, Any] = field(default_factory=dict)  # builtin: dim, layers..
    vocab_size: int = 1024  # builtin: most frequent caption words kept (+ specials)
    vocab_captions: int = 20_000  # builtin: training captions scanned for the vocabulary
    class_conditional: bool = False  # condition on dataset labels instead of captions
    prompt_dropout: float = 0.1  # rows trained on the null prefix (classifier-free guidance)
    lr: float = 3e-4  # AdamW
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])  # LLM practice
    weight_decay: float = 0.01
    preview_prompts: list[str] = field(default_factory=list)  # grid prompts (default: data)
    init_from: str | None = None  # trained model of this mode to continue (its config is kept)
    warm_start: str | None = None  # trained token model whose text encoder and blocks start
    # this one on a new tokenizer (its architecture kept; token embeddings and head new)

    def __post_init__(self) -> None:
        if self.init_from is None:
            require(bool(self.tokenizer), "task_options.tokenizer", self.tokenizer,
                    "a trained vq checkpoint (e.g. runs/shapes-vq)")  # fmt: skip
            if self.warm_start is not None:
                for name in ("model_config", "text_encoder_config"):
                    require(not getattr(self, name), f"task_options.{name}", getattr(self, name),
                            "empty when task_options.warm_start is set: the model it names "
                            "brings its own")  # fmt: skip
        else:
            require(self.warm_start is None, "task_options.warm_start", self.warm_start,
                    "null when task_options.init_from is set (continue one model or warm-start "
                    "from one, not both)")  # fmt: skip
            for name in ("tokenizer", "model_config", "text_encoder_config"):
                require(not getattr(self, name), f"task_options.{name}", getattr(self, name),
                        "empty when task_options.init_from is set: the model it names "
                        "brings its own")  # fmt: skip
        require(self.lr > 0, "task_options.lr", self.lr, "> 0")
        require(self.weight_decay >= 0, "task_options.weight_decay", self.weight_decay, ">= 0")
        require(0 <= self.prompt_dropout < 1, "task_options.prompt_dropout",
                self.prompt_dropout, "a probability in [0, 1)")  # fmt: skip
        require(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
                "task_options.betas", self.betas, "two Adam betas in [0, 1)")  # fmt: skip
        require(not (self.class_conditional and self.text_encoder != "none"),
                "task_options.text_encoder", self.text_encoder,
                "'none' when class_conditional is true")  # fmt: skip


def load_tokenizer(
    name_or_path: str, field: str = "task_options.tokenizer"
) -> tuple[nn.Module, dict[str, Any]]:
    """The frozen vq tokenizer (a vq checkpoint's, or a token model's own) and its config dict;
    `field` names the option in errors."""
    from pixloom.models.loading import load_image_tokenizer
    from pixloom.training.checkpointing import resolve_trained

    tokenizer, config, _ = load_image_tokenizer(resolve_trained(name_or_path), field=field)
    return tokenizer.requires_grad_(False), config


class TokenLmTask:
    """One phase "lm" over a TokenTransformer holding the frozen tokenizer."""

    ema_module = "transformer"

    def __init__(self, options: TokenLmTaskOptions, dataset_info: Any):
        self.options = options
        self.codes = CodeCache()
        self.preview_prompts = list(options.preview_prompts)
        if options.init_from is not None:
            self._continue(options.init_from)
            return
        tokenizer, tokenizer_config = load_tokenizer(options.tokenizer)
        if options.warm_start is not None:  # any mode: only the text side and blocks carry over
            source = self._load_trained(options.warm_start, "warm_start", list(FAMILY.values()))
            architecture = {name: value for name, value in config_to_dict(source.config).items()
                            if name not in ("vocab", "grid_size", "mode", "tokenizer")}  # fmt: skip
            spec = architecture.pop("text_encoder")
        else:
            source, architecture = None, options.model_config
            spec = {} if options.class_conditional else text_encoder_spec(options, dataset_info)
        classes = int(getattr(dataset_info, "num_classes", 0) or 0)
        if options.class_conditional:
            require(classes > 0, "task_options.class_conditional", True,
                    f"false: dataset {dataset_info.name} has no labels")  # fmt: skip
        fields = {**architecture, "vocab": tokenizer.codebook_size,
                  "grid_size": tokenizer.grid_size, "mode": options.mode, "text_encoder": spec,
                  "num_classes": classes if options.class_conditional else 0,
                  "tokenizer": tokenizer_config}  # fmt: skip
        self.model_config = config_from_dict(TokenTransformerConfig, fields,
                                             where="task_options.model_config")  # fmt: skip
        self.transformer = build_model(FAMILY[options.mode], self.model_config)
        self.transformer.tokenizer.load_state_dict(tokenizer.state_dict())
        if source is not None:
            warm_start(self.transformer, source)
        from pixloom.text.registry import frozen_encoder

        self.frozen = frozen_encoder(spec)

    def _load_trained(self, name_or_path: str, field: str, families: list[str]) -> nn.Module:
        """The trained token model that task_options.`field` names, of one of `families`,
        conditioned the way the options ask (its text encoder, or class labels)."""
        from pixloom.training.checkpointing import load_trained

        options = self.options
        model, checkpoint = load_trained(name_or_path, field, families)
        spec = model.config.text_encoder
        saved = "none" if not spec else spec["name"]
        wanted = "none" if options.class_conditional else options.text_encoder
        require(wanted == saved, "task_options.text_encoder", options.text_encoder,
                f"{saved!r}, the encoder of the {field} model")  # fmt: skip
        require(bool(model.config.num_classes) == options.class_conditional,
                "task_options.class_conditional", options.class_conditional,
                f"{bool(model.config.num_classes)}, as the {field} model was trained")  # fmt: skip
        return model

    def _continue(self, name_or_path: str) -> None:
        """Take the model, tokenizer and text encoder (vocabulary included) of a trained
        checkpoint of this mode, to train it further (fine-tuning, or more steps)."""
        from pixloom.text.registry import frozen_encoder

        model = self._load_trained(name_or_path, "init_from", [FAMILY[self.options.mode]])
        self.model_config = model.config
        self.transformer = model.train()  # its tokenizer stays frozen (eval, no grads)
        self.frozen = frozen_encoder(self.model_config.text_encoder)

    def modules(self) -> dict[str, nn.Module]:
        """The transformer (tokenizer and built-in text encoder inside)."""
        return {"transformer": self.transformer}

    def compile_modules(self) -> None:
        """torch.compile each transformer block in place (TrainConfig.compile).

        Training shapes are fixed (batch, prefix + grid tokens), so each block compiles once;
        on 2 AMX cores this fuses the norms, rotary embeddings and gates around the matrix
        products and cuts a bf16 step by about a third (benchmarks/token_training.py).
        """
        if self.transformer.embed.weight.device.type == "cpu":  # inductor writes C++ there
            compilers = [os.environ.get("CXX"), "g++", "clang++"]
            require(any(name and shutil.which(name) for name in compilers), "compile", True,
                    "false: torch.compile on the CPU needs a C++ compiler (g++ or clang++ on "
                    "PATH, or CXX)")  # fmt: skip
        for block in self.transformer.blocks:
            block.compile(dynamic=False)

    def phases(self) -> list[Phase]:
        """One AdamW phase over the trainable parameters (the tokenizer is frozen)."""
        options = self.options
        return [Phase("lm", ["transformer"], options.lr, betas=tuple(options.betas),
                      weight_decay=options.weight_decay)]  # fmt: skip

    def condition(self, model: nn.Module, batch: dict, null: torch.Tensor | None):
        """The TokenCondition of a batch (captions or labels), or None when unconditional."""
        device = batch["image"].device
        if self.model_config.num_classes:
            return TokenCondition(labels=batch["label"].to(device).long(), null=null)
        if not self.model_config.text_encoder:
            return None
        from pixloom.text.registry import encode_captions

        text = encode_captions(model.text_encoder, self.frozen, list(batch["caption"]), device)
        return TokenCondition(text=text, null=null)

    def loss(self, phase: str, batch: dict, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Cross-entropy on next tokens (raster) or on masked tokens (maskgit)."""
        model, image = self.transformer, batch["image"]
        count, device = image.shape[0], image.device
        if not self.preview_prompts and self.model_config.text_encoder:
            self.preview_prompts = list(batch["caption"][:8])
        indices = self.codes.encode(model.tokenizer, image)  # (B, h, w)
        side = self.model_config.grid_size
        require(tuple(indices.shape[1:]) == (side, side), "resolution", image.shape[-1],
                f"the tokenizer's training resolution (it gave a {tuple(indices.shape[1:])} "
                f"grid, the model expects {side}x{side})")  # fmt: skip
        tokens = indices.flatten(1)  # (B, N)
        null = torch.rand(count, device=device) < self.options.prompt_dropout
        cond = self.condition(model, batch, null)
        if self.options.mode == "raster":
            logits = model(tokens, None, cond)  # (B, N, V)
            loss = F.cross_entropy(logits.float().flatten(0, 1), tokens.flatten())
            return loss, {"ce": float(loss.detach())}
        masked = random_mask(count, tokens.shape[1], device)
        logits = model(tokens.masked_fill(masked, model.special), None, cond)
        loss = F.cross_entropy(logits.float()[masked], tokens[masked])
        return loss, {"ce": float(loss.detach()), "mask_ratio": float(masked.float().mean())}

    def export_config(self) -> dict:
        """The family and transformer config (tokenizer and text encoder configs included)."""
        return {"family": FAMILY[self.options.mode], "model": config_to_dict(self.model_config)}

    def state_dict(self) -> dict:
        """The preview prompts (so a resumed run draws the same grids)."""
        return {"preview_prompts": list(self.preview_prompts)}

    def load_state_dict(self, state: dict) -> None:
        """Restore the preview prompts."""
        self.preview_prompts = list(state.get("preview_prompts", []))

    def sample_images(self, modules: dict[str, nn.Module], step: int) -> list | None:
        """One image per preview prompt (or class 0.. / 8 unconditional), seeds 0.., EMA."""
        from pixloom.pipelines.text_to_image import tensor_to_images
        from pixloom.sampling.tokens import sample_maskgit, sample_raster

        model = modules["transformer"]
        device = model.embed.weight.device
        count = len(self.preview_prompts) or 8
        batch = {"image": torch.zeros(count, device=device),
                 "caption": self.preview_prompts or [""] * count,
                 "label": torch.arange(count) % max(self.model_config.num_classes, 1)}  # fmt: skip
        cond = self.condition(model, batch, None)
        generators = [torch.Generator().manual_seed(i) for i in range(count)]
        guidance = 3.0 if self.model_config.prefix_length else 1.0
        common = {"count": count, "guidance_scale": guidance, "generators": generators}
        if self.options.mode == "raster":
            indices = sample_raster(model, cond, **common)
        else:
            indices = sample_maskgit(model, cond, steps=min(8, model.num_tokens), **common)
        return tensor_to_images(model.tokenizer.decode(indices, list(batch["caption"])))


class CodeCache:
    """The frozen tokenizer's codes of each training image, computed once (CPU runs).

    The tokenizer never changes during a run, so an image's codes are a pure function of its
    pixels: on the CPU, where encoding is a sixth of a training step, images are keyed by a
    digest of their bytes and only unseen ones are encoded (the shapes recipes see each of
    their 100,000 scenes several times). Datasets whose crops change every epoch simply miss;
    past `max_entries` images (about 0.2 GB) nothing more is stored. On GPUs encoding is cheap
    and the digest would need the images on the host, so every batch is encoded.
    """

    def __init__(self, max_entries: int = 500_000):
        self.max_entries = max_entries
        self.entries: dict[bytes, bytes] = {}  # digest -> int32 codes of one image
        self.grid: tuple[int, ...] = ()  # (h, w) of the tokenizer's grid, once seen
        self.hits = self.misses = 0

    def encode(self, tokenizer: nn.Module, image: torch.Tensor) -> torch.Tensor:
        """The codes (B, h, w) long of images (B, C, H, W), as tokenizer.encode gives them."""
        if image.device.type != "cpu":
            with torch.no_grad():
                return tokenizer.encode(image).indices
        pixels = image.detach().float().contiguous().numpy()  # (B, C, H, W), NCHW order
        keys = [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in pixels]
        missing = [i for i, key in enumerate(keys) if key not in self.entries]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        fresh = {}
        if missing:
            with torch.no_grad():
                codes = tokenizer.encode(image[missing]).indices  # (M, h, w)
            self.grid = tuple(codes.shape[1:])
            for i, row in zip(missing, codes.to(torch.int32).numpy()):
                fresh[keys[i]] = row.tobytes()
            if len(self.entries) + len(fresh) <= self.max_entries:
                self.entries.update(fresh)
        rows = [np.frombuffer(fresh.get(key) or self.entries[key], dtype=np.int32) for key in keys]
        return torch.from_numpy(np.stack(rows)).long().view(len(keys), *self.grid)


def warm_start(model: nn.Module, source: nn.Module) -> None:
    """Copy into `model` every weight of `source`, a token model of the same architecture on
    another tokenizer, that does not depend on the tokenizer's codes: the text encoder, prompt
    projection, null prefix, label embedding, blocks and final norm. The token embedding, the
    output head and the tokenizer stay as they are."""
    fresh = ("embed.", "head.", "tokenizer.")
    target = model.state_dict()
    with torch.no_grad():
        for name, value in source.state_dict().items():
            if name.startswith(fresh) or name not in target:
                continue
            require(target[name].shape == value.shape, "task_options.warm_start", name,
                    f"a weight of shape {tuple(target[name].shape)}, as this model's "
                    f"(it has {tuple(value.shape)})")  # fmt: skip
            target[name].copy_(value)


def random_mask(count: int, total: int, device: torch.device) -> torch.Tensor:
    """(count, total) bool: per row ceil(total cos(pi/2 r)) random cells, r ~ U(0, 1), >= 1."""
    ratio = torch.cos(math.pi / 2 * torch.rand(count, device=device))  # (B,)
    masked = (ratio * total).ceil().clamp(1, total).long()  # (B,)
    ranks = torch.rand(count, total, device=device).argsort(-1).argsort(-1)  # random ranks
    return ranks < masked[:, None]


@register_task("token-lm")
def make_token_lm_task(options: dict, dataset_info: Any) -> TokenLmTask:
    """Build the token-lm task from its options (unknown options are refused by name)."""
    return TokenLmTask(
        config_from_dict(TokenLmTaskOptions, options, where="task_options"), dataset_info
    )
