"""Text-to-image with the GAN families (mlp-gan, dcgan, stylegan).

    pipe = pixloom.load("shapes-t2i")
    result = pipe("a red circle", num_images=4, seed=0)      # result.images: list of PIL
    generate_files(TextToImageRequest("a red circle", num_images=4, out="outputs"), pipe)

Image i of a call uses seed + i: its latent comes from its own torch.Generator, and the
network runs one image at a time through the same kernels, so any image replays bit for
bit on its own (`pixloom generate --from image.png`). The prompt is encoded by the encoder
named in the checkpoint's config (built-in ones live inside the generator).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from pixloom import __version__
from pixloom.devices import autocast, resolve_device, resolve_precision
from pixloom.errors import InvalidValue, PixloomError, require
from pixloom.families import GAN_FAMILIES, TEXT_TO_IMAGE_FAMILIES, TOKEN_FAMILIES
from pixloom.sampling.truncation import conditional_mean_w, truncate

DEFAULT_MODEL = "shapes-t2i"
MAX_PROMPT_CHARS = 2000  # longer prompts are refused; encoders truncate tokens past max_length
MAX_IMAGES = 256
MAX_SEED = 2**63 - 1
MAX_STEPS = 1000
MAX_BEST_OF = 64
# Request fields only some families use -> those families; the others refuse a set value.
FIELD_FAMILIES = {
    "truncation": GAN_FAMILIES,
    "guidance_scale": TOKEN_FAMILIES,
    "temperature": TOKEN_FAMILIES,
    "top_k": ("token-ar",),
    "top_p": ("token-ar",),
    "steps": ("maskgit",),
    "best_of": TEXT_TO_IMAGE_FAMILIES,
    "judge": TEXT_TO_IMAGE_FAMILIES,
}
JUDGES = ("critic", "likelihood")
SAMPLING_FIELDS = tuple(name for name in FIELD_FAMILIES if name != "truncation")
# Request fields added after PNGs were written -> (the value that reproduces those PNGs, the
# families that wrote such PNGs). A GAN PNG without `judge` drew one draft: nothing judged.
REPLAY_ABSENT = {
    "best_of": (1, TEXT_TO_IMAGE_FAMILIES),
    "judge": ("likelihood", TOKEN_FAMILIES),
}


def refuse_unused(request: TextToImageRequest, family: str) -> None:
    """Refuse by name every field set in `request` that `family` does not use (never ignore)."""
    for name, families in FIELD_FAMILIES.items():
        value = getattr(request, name)
        if value is not None and family not in families:
            raise InvalidValue(
                name, value, f"unset: {family} models do not use it ({', '.join(families)} do)"
            )


def sampling_defaults(config: dict[str, Any], family: str) -> dict[str, Any]:
    """A checkpoint's own defaults for the request fields its family uses (config.json
    "sampling", as Hugging Face's generation_config), each checked like a request field.

    Written by `pixloom export --sampling NAME=VALUE`; a request's own value always wins.
    """
    stored = config.get("sampling") or {}
    require(isinstance(stored, dict), "config.json:sampling", stored,
            "an object of request fields and values")  # fmt: skip
    used = [name for name, families in FIELD_FAMILIES.items() if family in families]
    for name, value in stored.items():
        require(name in used, f"config.json:sampling.{name}", value,
                f"one of the fields {family} models use: {', '.join(used)}")  # fmt: skip
    try:
        TextToImageRequest("", **stored)
    except InvalidValue as error:
        raise InvalidValue(
            f"config.json:sampling.{error.field}", error.value, error.valid
        ) from None
    return dict(stored)


def _meta(help_text: str, **extra: Any) -> dict[str, Any]:
    return {"help": help_text, **extra}


@dataclass
class TextToImageRequest:
    """Every parameter of a generate job: one definition for the CLI, the API and the server."""

    prompt: str | None = field(
        default=None,
        metadata=_meta(
            "the text to draw (tokens past the encoder's limit are dropped)", positional=True
        ),
    )
    num_images: int | None = field(
        default=None, metadata=_meta(f"images to draw, 1 to {MAX_IMAGES}; default 1", short="-n")
    )
    seed: int | None = field(default=None, metadata=_meta("seed of image 0; image i uses seed + i"))
    truncation: float | None = field(
        default=None, metadata=_meta("psi in (0, 1]: pull toward the prompt's mean; default 1")
    )
    guidance_scale: float | None = field(
        default=None, metadata=_meta("classifier-free guidance scale >= 0 (token models)")
    )
    temperature: float | None = field(
        default=None, metadata=_meta("sampling temperature >= 0, 0 = greedy (token models)")
    )
    top_k: int | None = field(
        default=None, metadata=_meta("keep the k likeliest tokens (token-ar)")
    )
    top_p: float | None = field(
        default=None, metadata=_meta("nucleus mass in (0, 1] kept when sampling (token-ar)")
    )
    steps: int | None = field(
        default=None, metadata=_meta(f"decoding steps, 1 to {MAX_STEPS} (maskgit)")
    )
    best_of: int | None = field(
        default=None,
        metadata=_meta(f"draw 1 to {MAX_BEST_OF} drafts per image and keep the best: the one "
                       "the model's critic rates highest, else (token models) the one the "
                       "model finds likeliest given the prompt; default 1"),
    )  # fmt: skip
    judge: Literal["critic", "likelihood"] | None = field(
        default=None,
        metadata=_meta("what picks among best_of drafts: critic (the image-text critic the "
                       "model file holds) or likelihood (a token model's own score of its "
                       "tokens); default critic when the model holds one"),
    )  # fmt: skip
    model: str | None = field(
        default=None, metadata=_meta(f"shipped name or checkpoint dir; default {DEFAULT_MODEL}")
    )
    out: str = field(default="outputs", metadata=_meta("output folder", short="-o"))
    grid: bool = field(default=False, metadata=_meta("also write one grid of all images"))
    overwrite: bool = field(default=False, metadata=_meta("replace existing output files"))
    from_image: str | None = field(
        default=None, metadata=_meta("replay the request stored in a pixloom PNG", short="--from")
    )
    precision: Literal["auto", "fp32", "bf16"] | None = field(
        default=None, metadata=_meta("bf16 on capable hardware under auto (the default)")
    )
    device: str = field(default="auto", metadata=_meta("auto, cpu, cuda or cuda:N"))

    def __post_init__(self) -> None:
        if self.prompt is not None:
            require(isinstance(self.prompt, str), "prompt", self.prompt, "a string")
            require(
                len(self.prompt) <= MAX_PROMPT_CHARS,
                "prompt",
                f"{len(self.prompt)} characters",
                f"at most {MAX_PROMPT_CHARS} characters",
            )
        require(
            self.prompt is not None or self.from_image is not None,
            "prompt",
            None,
            "a prompt, or --from IMAGE.png to replay one",
        )
        if self.num_images is not None:
            require(
                _is_int(self.num_images) and 1 <= self.num_images <= MAX_IMAGES,
                "num_images",
                self.num_images,
                f"an integer from 1 to {MAX_IMAGES}",
            )
        if self.seed is not None:
            require(
                _is_int(self.seed)
                and self.seed >= 0
                and self.seed + (self.num_images or 1) - 1 <= MAX_SEED,
                "seed",
                self.seed,
                f"an integer from 0 to {MAX_SEED} - num_images + 1",
            )
        if self.truncation is not None:
            require(
                isinstance(self.truncation, (int, float)) and 0 < self.truncation <= 1,
                "truncation",
                self.truncation,
                "a number in (0, 1]",
            )
        self._check_sampling()
        require(bool(str(self.out).strip()), "out", self.out, "an output folder path")
        require(
            self.precision in (None, "auto", "fp32", "bf16"),
            "precision",
            self.precision,
            "one of auto, fp32, bf16",
        )

    def _check_sampling(self) -> None:
        """Validate the token-model sampling fields (None = the model's default)."""
        number = (int, float)
        checks = {
            "guidance_scale": (number, lambda v: 0 <= v <= 100, "a number from 0 to 100"),
            "temperature": (number, lambda v: 0 <= v <= 100, "a number from 0 to 100"),
            "top_k": (int, lambda v: v >= 1, "an integer >= 1"),
            "top_p": (number, lambda v: 0 < v <= 1, "a number in (0, 1]"),
            "steps": (int, lambda v: 1 <= v <= MAX_STEPS, f"an integer from 1 to {MAX_STEPS}"),
            "best_of": (
                int,
                lambda v: 1 <= v <= MAX_BEST_OF,
                f"an integer from 1 to {MAX_BEST_OF}",
            ),
        }
        for name, (kind, ok, valid) in checks.items():
            value = getattr(self, name)
            if value is not None:
                typed = isinstance(value, kind) and not isinstance(value, bool)
                require(typed and ok(value), name, value, valid)
        if self.judge is not None:
            require(self.judge in JUDGES, "judge", self.judge, f"one of {', '.join(JUDGES)}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class Result:
    """Generated images and one metadata dict per image."""

    images: list[Image.Image]
    metadata: list[dict[str, Any]]


def draw_latents(count: int, z_dim: int, *, seed: int, best_of: int = 1) -> torch.Tensor:
    """(count * best_of, z_dim) standard normal latents, image-major: image i's best_of drafts
    are successive draws of its own generator seeded seed + i (the first is what best_of=1
    draws), so an image replays alone."""
    rows = [
        torch.randn(z_dim, generator=generator)
        for generator in (torch.Generator().manual_seed(seed + i) for i in range(count))
        for _ in range(best_of)
    ]
    return torch.stack(rows)


def tensor_to_images(images: torch.Tensor) -> list[Image.Image]:
    """(B, 3, H, W) in [-1, 1] -> 8-bit RGB PIL images (NaN become 0)."""
    pixels = ((images.detach().float().cpu().nan_to_num(-1.0).clamp(-1, 1) + 1) * 127.5).round()
    array = pixels.to(torch.uint8).permute(0, 2, 3, 1).numpy()  # (B, H, W, 3)
    return [Image.fromarray(np.ascontiguousarray(image)) for image in array]


def demo_prompts() -> list[str]:
    """Prompts for `make demo`: a single object, two objects, a relation and a count."""
    return [
        "a red circle",
        "a large blue square in the top left corner",
        "a yellow triangle and a green star",
        "a small white circle to the left of a large red square",
        "three green stars",
    ]


class TextToImagePipeline:
    """pipe(prompt, num_images=, seed=, truncation=) -> Result; see the module docstring."""

    def __init__(self, generator: nn.Module, *, name: str, sha256: str | None, family: str,
                 device: Any = "auto", precision: str = "auto",
                 sampling: dict[str, Any] | None = None):  # fmt: skip
        require(family in GAN_FAMILIES, "model", name, f"a text-to-image model ({GAN_FAMILIES})")
        self.sampling = sampling_defaults({"sampling": sampling}, family)
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.generator = generator.eval().requires_grad_(False).to(self.device)
        self.name, self.sha256, self.family = name, sha256, family
        self.config = generator.config
        spec = self.config.text_encoder
        self.encoder = None
        if spec:
            from pixloom.text.registry import load_text_encoder

            self.encoder = generator.text_encoder or load_text_encoder(spec)

    def _refuse(self, request: TextToImageRequest, best_of: int) -> None:
        """Fields this GAN cannot honour are refused by name, never ignored."""
        refuse_unused(request, self.family)
        require(request.judge != "likelihood", "judge", "likelihood",
                "critic or unset: a GAN gives its drafts no likelihood")  # fmt: skip
        if self.generator.critic is None:
            require(request.judge is None, "judge", request.judge,
                    f"unset: {self.name} holds no critic (pixloom export --critic adds one)")  # fmt: skip
            require(best_of == 1, "best_of", best_of,
                    f"1 or unset: {self.name} holds no critic to judge its drafts "
                    "(pixloom export --critic adds one)")  # fmt: skip

    def resolve(self, request: TextToImageRequest) -> TextToImageRequest:
        """The request with every None replaced by this model's default."""
        best_of = self.sampling.get("best_of", 1) if request.best_of is None else request.best_of
        self._refuse(request, best_of)
        judged = self.generator.critic is not None
        return dataclasses.replace(
            request,
            num_images=1 if request.num_images is None else request.num_images,
            seed=0 if request.seed is None else request.seed,
            truncation=float(
                self.sampling.get("truncation", 1.0)
                if request.truncation is None
                else request.truncation
            ),
            best_of=int(best_of),
            judge=(request.judge or "critic") if judged else None,
            model=request.model or self.name,
            precision=request.precision or self.precision,
        )

    @torch.no_grad()
    def _run(self, prompt: str, z: torch.Tensor, psi: float, precision: str,
             best_of: int = 1) -> torch.Tensor:  # fmt: skip
        """Images (B, 3, R, R) float for latents z (B * best_of, z_dim), image-major: one
        network call per image on its drafts; the critic keeps the draft it rates highest."""
        one = self.encoder.encode([prompt]) if self.encoder is not None else None
        one = None if one is None else one.to(self.device)
        cond = None if one is None else one.repeat(best_of)
        generator, out = self.generator, []
        center = None
        with autocast(self.device, precision):
            if self.family == "stylegan" and psi != 1:
                center = conditional_mean_w(
                    generator.map, one, z_dim=self.config.z_dim, device=self.device
                )
            for drafts in z.to(self.device).split(best_of):
                if self.family == "stylegan":
                    w = generator.map(drafts, cond)
                    w = truncate(w, center.to(w.dtype), psi) if center is not None else w
                    images = generator.synthesize(w, cond, noise_mode="const")
                else:
                    images = generator(drafts * psi, None, cond)
                if best_of > 1:
                    images = images[generator.critic(images, [prompt] * best_of).argmax()][None]
                out.append(images.float())
        return torch.cat(out)

    def __call__(self, prompt: str, *, num_images: int = 1, seed: int = 0,
                 truncation: float | None = None, precision: str | None = None,
                 best_of: int | None = None, judge: str | None = None) -> Result:  # fmt: skip
        """Draw `num_images` images of `prompt`; image i from seed + i."""
        request = self.resolve(
            TextToImageRequest(prompt, num_images=num_images, seed=seed, truncation=truncation,
                               precision=precision, best_of=best_of, judge=judge)
        )  # fmt: skip
        k = request.best_of
        z = draw_latents(request.num_images, self.config.z_dim, seed=request.seed, best_of=k)
        z = z.view(request.num_images, k, -1)
        return draw_checked(
            lambda rows, chosen: self._run(request.prompt, z[rows].flatten(0, 1),
                                           request.truncation, chosen, best_of=k),
            request, resolve_precision(request.precision, self.device), self,
        )  # fmt: skip


def draw_checked(
    run: Callable[[list[int], str], torch.Tensor],
    request: TextToImageRequest,
    precision: str,
    pipe: Any,
) -> Result:
    """The images of a resolved request from run(rows, precision), with replay metadata.

    G1: all-black or non-finite images are drawn again in fp32, and refused if they stay bad.
    `pipe` supplies the model's name, sha256 and family for the metadata.
    """
    seeds = [request.seed + i for i in range(request.num_images)]
    images, used = checked_rows(run, seeds, precision, pipe.name)
    metadata = [replay_metadata(request, i, used[i], pipe) for i in range(len(seeds))]
    return Result(tensor_to_images(images), metadata)


def checked_rows(
    run: Callable[[list[int], str], torch.Tensor], seeds: list[int], precision: str, name: str
) -> tuple[torch.Tensor, list[str]]:
    """(images, precision used per image) of run(rows, precision) over every row of `seeds`;
    rows that come out all-black or non-finite are drawn again in fp32 (G1), then refused."""
    images = run(list(range(len(seeds))), precision)
    used = [precision] * len(seeds)
    bad = _bad_images(images)
    if bad and precision != "fp32":
        retried = run(bad, "fp32")
        for j, i in enumerate(bad):
            images[i], used[i] = retried[j], "fp32"
        bad = _bad_images(images)
    if bad:
        raise PixloomError(
            f"{name} produced all-black or non-finite images for seeds "
            f"{[seeds[i] for i in bad]} even in fp32; the checkpoint may be broken"
        )
    return images, used


def draw_pairs(pipe: Any, prompts: list[str], seeds: list[int], **fields: Any) -> list[Image.Image]:
    """One image per (prompt, seed) pair, for evaluation; `fields` as in pipe(prompt, ...).

    A pipeline with `draw_batch` (the token models) draws many prompts in one batch; others
    are called once per run of equal prompts with consecutive seeds. Each image comes from
    its own seed either way; only a lone draw is promised to replay bit for bit.
    """
    require(
        len(prompts) == len(seeds), "seeds", len(seeds), f"{len(prompts)} seeds, one per prompt"
    )
    if hasattr(pipe, "draw_batch"):
        return pipe.draw_batch(prompts, seeds, **fields)
    images: list[Image.Image] = []
    start = 0
    while start < len(prompts):
        end = start + 1
        while (end < len(prompts) and prompts[end] == prompts[start]
               and seeds[end] == seeds[start] + end - start):  # fmt: skip
            end += 1
        images += pipe(prompts[start], num_images=end - start, seed=seeds[start], **fields).images
        start = end
    return images


def replay_metadata(request: TextToImageRequest, index: int, precision: str, pipe: Any) -> dict:
    """Everything needed to replay image `index` of a resolved request alone (PNG metadata)."""
    replay = dataclasses.replace(
        request, num_images=1, seed=request.seed + index, precision=precision,
        from_image=None, grid=False, overwrite=False,
    )  # fmt: skip
    return {
        "prompt": request.prompt,
        "seed": request.seed + index,
        "model": pipe.name,
        "model_sha256": pipe.sha256,
        "pixloom_version": __version__,
        "chain": [{"step": "generate", "request": dataclasses.asdict(replay),
                   "family": pipe.family, "precision": precision}],
    }  # fmt: skip


def _bad_images(images: torch.Tensor) -> list[int]:
    """Indices of images with non-finite values or every 8-bit pixel black (G1)."""
    finite = torch.isfinite(images).flatten(1).all(1)
    black = (images.nan_to_num(-1.0) <= -1 + 1 / 255).flatten(1).all(1)
    return [i for i in range(len(images)) if not finite[i] or black[i]]


def from_checkpoint(
    model: nn.Module, checkpoint: Any, *, device: Any = "auto"
) -> TextToImagePipeline:
    """Pipeline factory for pixloom.api.load: a loaded generator and its Checkpoint."""
    return TextToImagePipeline(
        model, name=Path(checkpoint.path).name, sha256=checkpoint.sha256,
        family=checkpoint.family, device=device, sampling=checkpoint.config.get("sampling"),
    )  # fmt: skip


def _slug(prompt: str) -> str:
    words = re.findall(r"[a-z0-9]+", prompt.lower())
    return "-".join(words)[:48].strip("-") or "image"


def replay_request(path: str | Path, request: TextToImageRequest) -> TextToImageRequest:
    """The request stored in a generated PNG, with this request's out/overwrite/model kept."""
    from pixloom.io.images import read_png_metadata

    metadata = read_png_metadata(path)
    steps = [s for s in (metadata or {}).get("chain", []) if s.get("step") == "generate"]
    if not steps:
        raise InvalidValue("from_image", str(path), "a PNG written by pixloom generate")
    stored = dict(steps[-1]["request"])
    names = {f.name for f in dataclasses.fields(TextToImageRequest)}
    stored = {k: v for k, v in stored.items() if k in names}
    for name, (value, families) in REPLAY_ABSENT.items():  # not the model's default now
        if name not in stored and steps[-1].get("family") in families:
            stored[name] = value
    stored.update(out=request.out, overwrite=request.overwrite, grid=False, from_image=None,
                  device=request.device)  # fmt: skip
    if request.model is not None:  # a checkpoint given by path (the PNG names its folder)
        stored["model"] = request.model
    return TextToImageRequest(**stored)


@runtime_checkable
class PromptPipeline(Protocol):
    """What generate_files needs: resolve(request) and pipe(prompt, **request fields)."""

    def resolve(self, request: TextToImageRequest) -> TextToImageRequest: ...

    def __call__(self, prompt: str, **fields: Any) -> Result: ...


def generate_files(request: TextToImageRequest, pipe: PromptPipeline) -> list[Path]:
    """Run a request and write its PNGs (and grid) inside request.out; returns the paths.

    A request with `from_image` must be expanded with replay_request first (the caller loads
    the model the stored request names).
    """
    from pixloom.io.grid import make_grid
    from pixloom.io.images import save_png

    require(
        request.from_image is None, "from_image", request.from_image, "expanded by replay_request"
    )
    require(isinstance(pipe, PromptPipeline), "model", request.model, "a text-to-image model")
    resolved = pipe.resolve(request)
    out, slug = Path(resolved.out), _slug(resolved.prompt)
    names = [f"{slug}-{resolved.seed + i}.png" for i in range(resolved.num_images)]
    targets = [out / name for name in names] + (
        [out / f"{slug}-{resolved.seed}-grid.png"] if resolved.grid else []
    )
    for target in targets:  # refuse before drawing anything (R3)
        if target.exists() and not resolved.overwrite:
            raise InvalidValue("overwrite", False, f"True to replace {target}, or another --out")
    sampling = {name: getattr(resolved, name) for name in SAMPLING_FIELDS
                if getattr(resolved, name) is not None}  # fmt: skip
    result = pipe(resolved.prompt, num_images=resolved.num_images, seed=resolved.seed,
                  truncation=resolved.truncation, precision=resolved.precision, **sampling)  # fmt: skip
    written = [
        save_png(image, target, metadata=meta, overwrite=resolved.overwrite)
        for image, target, meta in zip(result.images, targets, result.metadata)
    ]
    if resolved.grid:
        grid = make_grid(result.images)
        written.append(
            save_png(
                grid,
                targets[-1],
                metadata={"prompt": resolved.prompt},
                overwrite=resolved.overwrite,
            )
        )
    return written
