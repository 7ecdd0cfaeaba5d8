"""Text-to-image with the token transformers (token-ar: raster decoding, maskgit: parallel).

    pipe = pixloom.load("runs/shapes-ar/model")
    result = pipe("a red circle", num_images=4, seed=0, guidance_scale=3.0)
    generate_files(TextToImageRequest("a red circle", num_images=4, out="outputs"), pipe)

Same request, Result and PNG metadata as the GAN pipeline (pixloom.pipelines.text_to_image).
Image i uses seed + i: every random draw of image i comes from its own torch.Generator, and
images are decoded one at a time (its conditional and null rows together), so any image
replays bit for bit alone (`pixloom generate --from image.png`). `draw_batch` draws many
(prompt, seed) pairs in one batch for evaluation, about ten times faster on a CPU. The
checkpoint holds the frozen image tokenizer, which turns the drawn token grid into pixels.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from PIL import Image

from pixloom.devices import autocast, resolve_device, resolve_precision
from pixloom.errors import require
from pixloom.families import TOKEN_FAMILIES
from pixloom.models.token_transformer import TokenCondition
from pixloom.pipelines.text_to_image import (
    Result,
    TextToImageRequest,
    checked_rows,
    draw_checked,
    refuse_unused,
    sampling_defaults,
    tensor_to_images,
)
from pixloom.sampling.tokens import sample_maskgit, sample_raster

DEFAULT_GUIDANCE = 3.0  # conditional models; unconditional ones always use 1
DEFAULT_MASKGIT_STEPS = 8


class TokenToImagePipeline:
    """pipe(prompt, num_images=, seed=, guidance_scale=, ...) -> Result; see the docstring."""

    def __init__(self, model: nn.Module, *, name: str, sha256: str | None, family: str,
                 device: Any = "auto", precision: str = "auto",
                 sampling: dict[str, Any] | None = None):  # fmt: skip
        require(family in TOKEN_FAMILIES, "model", name, f"a token model ({TOKEN_FAMILIES})")
        self.sampling = sampling_defaults({"sampling": sampling}, family)
        require(model.tokenizer is not None, "model", name,
                "a checkpoint that holds its image tokenizer (model.tokenizer)")  # fmt: skip
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.model = model.eval().requires_grad_(False).to(self.device)
        self.name, self.sha256, self.family = name, sha256, family
        self.config = model.config
        self.encoder = None
        if self.config.text_encoder:
            from pixloom.text.registry import load_text_encoder

            self.encoder = model.text_encoder or load_text_encoder(self.config.text_encoder)

    def _refuse(self, request: TextToImageRequest) -> None:
        """Fields this model cannot honour are refused by name, never ignored."""
        refuse_unused(request, self.family)
        conditional = self.config.prefix_length > 0
        if request.guidance_scale is not None and not conditional:
            require(request.guidance_scale == 1, "guidance_scale", request.guidance_scale,
                    f"1 or unset: {self.name} is unconditional")  # fmt: skip
        if request.top_k is not None:
            require(request.top_k <= self.config.vocab, "top_k", request.top_k,
                    f"at most the vocabulary size {self.config.vocab}")  # fmt: skip
        if request.judge == "critic":
            require(self.model.critic is not None, "judge", "critic",
                    f"likelihood or unset: {self.name} holds no critic "
                    "(pixloom export --critic adds one)")  # fmt: skip
        if request.steps is not None:
            total = self.model.num_tokens
            require(request.steps <= total, "steps", request.steps,
                    f"at most the {total} tokens of an image")  # fmt: skip

    def resolve(self, request: TextToImageRequest) -> TextToImageRequest:
        """The request with every None this model uses replaced by its default."""
        self._refuse(request)
        raster = self.family == "token-ar"
        conditional = self.config.prefix_length > 0

        def pick(name, default):  # the request's value, else the checkpoint's, else pixloom's
            value = getattr(request, name)
            return self.sampling.get(name, default) if value is None else value

        return dataclasses.replace(
            request,
            num_images=1 if request.num_images is None else request.num_images,
            seed=0 if request.seed is None else request.seed,
            guidance_scale=float(
                pick("guidance_scale", DEFAULT_GUIDANCE if conditional else 1.0)
            ),  # fmt: skip
            temperature=float(pick("temperature", 1.0)),
            top_k=pick("top_k", self.config.vocab) if raster else None,
            top_p=float(pick("top_p", 1.0)) if raster else None,
            best_of=int(pick("best_of", 1)),
            judge=pick("judge", "likelihood" if self.model.critic is None else "critic"),
            steps=None
            if raster
            else pick("steps", min(DEFAULT_MASKGIT_STEPS, self.model.num_tokens)),
            model=request.model or self.name,
            precision=request.precision or self.precision,
        )

    def condition(self, prompts: list[str]) -> TokenCondition | None:
        """The condition rows of prompts (a class model takes a class id as prompt)."""
        if self.encoder is not None:
            return TokenCondition(text=self.encoder.encode(prompts).to(self.device))
        if self.config.num_classes:
            labels = []
            for prompt in prompts:
                text = prompt.strip()
                valid = f"a class id 0..{self.config.num_classes - 1} ({self.name} is class-conditional)"
                require(
                    text.isdigit() and int(text) < self.config.num_classes, "prompt", prompt, valid
                )
                labels.append(int(text))
            return TokenCondition(labels=torch.tensor(labels, device=self.device))
        return None

    @torch.no_grad()
    def _run(self, request: TextToImageRequest, prompts: list[str], seeds: list[int],
             precision: str, *, together: bool = False) -> torch.Tensor:  # fmt: skip
        """Images (B, 3, R, R) float, row i of prompts[i] from seeds[i]: one image (and its
        null row) at a time so that each replays alone, or all rows in one batch (`together`)."""
        groups = [list(range(len(seeds)))] if together else [[i] for i in range(len(seeds))]
        out = []
        with autocast(self.device, precision):
            conds = {} if together else {p: self.condition([p]) for p in dict.fromkeys(prompts)}
            for rows in groups:
                cond = self.condition(prompts) if together else conds[prompts[rows[0]]]
                generators = [torch.Generator().manual_seed(seeds[i]) for i in rows]
                row_prompts = [prompts[i] for i in rows]  # a text-conditioned decoder reads them
                common = {"count": len(rows), "guidance_scale": request.guidance_scale,
                          "temperature": request.temperature, "generators": generators,
                          "best_of": request.best_of,
                          "judge": self._judge(request, row_prompts)}  # fmt: skip
                if self.family == "token-ar":
                    indices = sample_raster(self.model, cond, top_k=request.top_k,
                                            top_p=request.top_p, **common)  # fmt: skip
                else:
                    indices = sample_maskgit(self.model, cond, steps=request.steps, **common)
                out.append(self.model.tokenizer.decode(indices, row_prompts).float())
        return torch.cat(out)

    def _judge(self, request: TextToImageRequest, prompts: list[str]):
        """The critic's scores of best_of drafts (count * K, h, w) of `prompts` (row i's K
        drafts in a row), or None: the sampler then scores drafts by their likelihood."""
        if request.judge != "critic" or request.best_of == 1:
            return None
        drafts = [prompt for prompt in prompts for _ in range(request.best_of)]

        def judge(tokens: torch.Tensor) -> torch.Tensor:
            images = self.model.tokenizer.decode(tokens, drafts)
            return self.model.critic(images, drafts)

        return judge

    def draw_batch(self, prompts: list[str], seeds: list[int], **fields: Any) -> list[Image.Image]:
        """One image per (prompt, seed) pair, all rows in one batch; `fields` as in __call__.

        For evaluation: image i draws only from seed i, as in __call__, but batched arithmetic
        may round differently from a lone draw, so these images carry no replay metadata.
        """
        require(len(prompts) == len(seeds) > 0, "seeds", len(seeds),
                f"{len(prompts)} seeds, one per prompt (at least one)")  # fmt: skip
        for prompt, seed in zip(prompts[1:], seeds[1:]):  # only prompt and seed vary by row
            TextToImageRequest(prompt, seed=seed)  # refuses a bad one by name (R1-R3)
        request = self.resolve(TextToImageRequest(prompts[0], seed=seeds[0], **fields))
        precision = resolve_precision(request.precision, self.device)

        def run(rows: list[int], chosen: str) -> torch.Tensor:
            return self._run(request, [prompts[i] for i in rows], [seeds[i] for i in rows],
                             chosen, together=True)  # fmt: skip

        images, _ = checked_rows(run, seeds, precision, self.name)
        return tensor_to_images(images)

    def __call__(self, prompt: str, *, num_images: int = 1, seed: int = 0,
                 truncation: float | None = None, precision: str | None = None,
                 guidance_scale: float | None = None, temperature: float | None = None,
                 top_k: int | None = None, top_p: float | None = None,
                 steps: int | None = None, best_of: int | None = None,
                 judge: str | None = None) -> Result:  # fmt: skip
        """Draw `num_images` images of `prompt`; image i from seed + i."""
        request = self.resolve(
            TextToImageRequest(prompt, num_images=num_images, seed=seed, truncation=truncation,
                               precision=precision, guidance_scale=guidance_scale,
                               temperature=temperature, top_k=top_k, top_p=top_p, steps=steps,
                               best_of=best_of, judge=judge)
        )  # fmt: skip
        return draw_checked(
            lambda rows, chosen: self._run(
                request, [request.prompt] * len(rows), [request.seed + i for i in rows], chosen
            ),
            request, resolve_precision(request.precision, self.device), self,
        )  # fmt: skip


def from_checkpoint(
    model: nn.Module, checkpoint: Any, *, device: Any = "auto"
) -> TokenToImagePipeline:
    """Pipeline factory for pixloom.api.load: a loaded token model and its Checkpoint."""
    return TokenToImagePipeline(
        model, name=Path(checkpoint.path).name, sha256=checkpoint.sha256,
        family=checkpoint.family, device=device, sampling=checkpoint.config.get("sampling"),
    )  # fmt: skip
