"""Super-resolution: upscale images with an interpolation baseline or a trained SR network.

    pipe = UpscalePipeline("edsr-x4")          # or a checkpoint dir, or "bicubic" + scale
    result = pipe(image, tile=128)             # PIL image or numpy array, any size
    upscale_files(UpscaleRequest(input="photos/", scale=4, out="big/"))  # upscale_files.py

Colour goes through the network (tiled and cross-faded when `tile` is set, see tiling.py);
alpha is upscaled separately with bicubic interpolation and kept. Grayscale inputs come back
grayscale; 16-bit inputs are processed in float and written back as 16-bit PNGs. PNG
metadata of the input is kept and the upscale step appended to its chain (RELIABILITY G2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from pixloom import __version__
from pixloom.devices import autocast, memory_format, resolve_device, resolve_precision
from pixloom.errors import CheckpointError, InvalidValue, PixloomError, require
from pixloom.pipelines.tiling import run_tiled

BASELINES = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
SR_FAMILIES = ("espcn", "edsr", "rrdb")
SCALES = (2, 3, 4)
MAX_OUTSCALE = 16.0


def _meta(help_text: str, **extra: Any) -> dict[str, Any]:
    return {"help": help_text, **extra}


@dataclass
class UpscaleRequest:
    """Every parameter of an upscale job: one definition for the CLI, the API and the server."""

    input: str = field(metadata=_meta("an image file or a folder of images", positional=True))
    scale: int | None = field(default=None, metadata=_meta("2, 3 or 4; default: the model's own"))
    model: str | None = field(
        default=None,
        metadata=_meta("nearest|bilinear|bicubic|lanczos, a shipped name, or a checkpoint dir"),
    )
    tile: int | None = field(
        default=None, metadata=_meta("LR tile side (>= 16) to bound memory; default: no tiling")
    )
    tile_overlap: int | None = field(
        default=None,
        metadata=_meta("LR context pixels around each tile (< tile/2); default 16 or less"),
    )
    outscale: float | None = field(
        default=None, metadata=_meta("final size factor, resized after the model (e.g. 3.5)")
    )
    self_ensemble: bool = field(
        default=False,
        metadata=_meta("average the network over the 8 flips/rotations (EDSR+): ~8x slower"),
    )
    out: str = field(default="outputs/upscale", metadata=_meta("output folder", short="-o"))
    overwrite: bool = field(default=False, metadata=_meta("replace existing output files"))
    device: str = field(default="auto", metadata=_meta("auto, cpu, cuda or cuda:N"))
    precision: Literal["auto", "fp32", "bf16"] = field(
        default="auto", metadata=_meta("bf16 + channels_last on capable hardware under auto")
    )

    def __post_init__(self) -> None:
        require(
            isinstance(self.input, str) and bool(self.input.strip()),
            "input",
            self.input,
            "an image file or a folder path",
        )
        require(self.scale is None or self.scale in SCALES, "scale", self.scale, "one of 2, 3, 4")
        require(
            self.tile is None or (isinstance(self.tile, int) and self.tile >= 16),
            "tile",
            self.tile,
            "an integer >= 16, or None for no tiling",
        )
        if self.tile_overlap is not None:
            require(
                isinstance(self.tile_overlap, int) and self.tile_overlap >= 0,
                "tile_overlap",
                self.tile_overlap,
                "an integer >= 0",
            )
            if self.tile is not None:
                require(
                    self.tile_overlap < self.tile / 2,
                    "tile_overlap",
                    self.tile_overlap,
                    f"less than tile/2 = {self.tile / 2}",
                )
        if self.outscale is not None:
            require(
                isinstance(self.outscale, (int, float)) and 0 < self.outscale <= MAX_OUTSCALE,
                "outscale",
                self.outscale,
                f"a number in (0, {MAX_OUTSCALE}]",
            )
        require(bool(str(self.out).strip()), "out", self.out, "an output folder path")
        require(
            self.precision in ("auto", "fp32", "bf16"),
            "precision",
            self.precision,
            "one of auto, fp32, bf16",
        )


@dataclass
class Result:
    """Upscaled images (8-bit PIL), their float arrays (full precision) and metadata."""

    images: list[Image.Image]
    arrays: list[np.ndarray]  # float32 HxWxC in [0, 1], C in (1, 2, 3, 4)
    metadata: list[dict[str, Any]]


def image_to_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """float32 HxWxC in [0, 1] from a PIL image or an array; C = 1 (gray), 2, 3 or 4 (alpha)."""
    if isinstance(image, Image.Image):
        if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
            return (np.asarray(image).astype(np.float32) / 65535.0)[..., None]
        if image.mode not in ("L", "LA", "RGB", "RGBA"):
            has_alpha = "transparency" in image.info or image.mode in ("PA", "RGBa", "La")
            image = image.convert("RGBA" if has_alpha else "RGB")
        image = np.asarray(image)
    require(
        isinstance(image, np.ndarray), "image", type(image).__name__, "a PIL image or a numpy array"
    )
    array = image[..., None] if image.ndim == 2 else image
    require(
        array.ndim == 3 and array.shape[2] in (1, 2, 3, 4) and min(array.shape[:2]) >= 1,
        "image",
        array.shape,
        "an HxW, HxWx1, HxWx2, HxWx3 or HxWx4 array",
    )
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    require(
        np.issubdtype(array.dtype, np.floating), "image", str(array.dtype), "uint8, uint16 or float"
    )
    array = array.astype(np.float32)
    require(
        bool(np.isfinite(array).all()) and array.min() >= 0 and array.max() <= 1,
        "image",
        f"values in [{array.min()}, {array.max()}]",
        "finite float values in [0, 1]",
    )
    return array


def array_to_images(array: np.ndarray) -> list[Image.Image]:
    """The 8-bit PIL image (L, LA, RGB or RGBA) of a float HxWxC array in [0, 1]."""
    pixels = np.round(array.clip(0, 1) * 255).astype(np.uint8)
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[array.shape[2]]
    return [Image.fromarray(pixels[..., 0] if mode == "L" else pixels)]


# Default LR context around a tile: the 32-block edsr-x4 needs more than 8 pixels to stay
# within 1/255 of the untiled output in bf16 (docs/models/edsr.md).
DEFAULT_OVERLAP = 16


def resolve_overlap(tile: int | None, tile_overlap: int | None) -> int:
    """The overlap to use: the request's, else DEFAULT_OVERLAP (less than half the tile)."""
    if tile_overlap is not None:
        if tile is not None:
            require(
                tile_overlap < tile / 2,
                "tile_overlap",
                tile_overlap,
                f"less than tile/2 = {tile / 2}",
            )
        return tile_overlap
    return DEFAULT_OVERLAP if tile is None else min(DEFAULT_OVERLAP, (tile - 1) // 2)


def check_output_size(size: tuple[int, int], scale: int, outscale: float | None) -> None:
    """Refuse outputs above the pixel cap (pixloom.io.images; PIXLOOM_MAX_PIXELS raises it)."""
    from pixloom.io.images import MAX_PIXELS_ENV, resolve_max_pixels

    factor = max(scale, outscale or 0)  # the network output exists before the outscale resize
    pixels = round(size[0] * factor) * round(size[1] * factor)
    limit = resolve_max_pixels()
    require(
        pixels <= limit,
        "scale" if outscale is None else "outscale",
        scale if outscale is None else outscale,
        f"an output of at most {limit} pixels ({size[1]}x{size[0]} would give {pixels}); "
        f"upscale a smaller image or raise {MAX_PIXELS_ENV}",
    )


def default_model(scale: int) -> str:
    """The shipped model used when none is named: edsr-x{scale}, or a clear error."""
    from pixloom.weights import weights_root

    name = f"edsr-x{scale}"
    require(
        (weights_root() / name).is_dir(),
        "model",
        None,
        f"a model name: the default {name} is not shipped in this install; pass --model "
        f"{'|'.join(BASELINES)} or a checkpoint directory (train: pixloom train --preset sr-{name})",
    )
    return name


def _load_network(model: str) -> tuple[nn.Module, str, str]:
    """(network, path, sha256) of a checkpoint directory or a shipped SR model name."""
    from pixloom.models.loading import load_model, resolve_checkpoint, shipped_models

    try:
        path = resolve_checkpoint(model)
    except CheckpointError:
        raise InvalidValue(
            "model",
            model,
            f"one of {', '.join(BASELINES)}, a checkpoint directory, or a shipped model "
            f"({', '.join(shipped_models()) or 'none yet'})",
        ) from None
    network, checkpoint = load_model(path)
    if checkpoint.family not in SR_FAMILIES:
        raise InvalidValue(
            "model",
            model,
            f"a super-resolution model ({', '.join(SR_FAMILIES)}); "
            f"this checkpoint is a {checkpoint.family!r} model",
        )
    return network, str(checkpoint.path), checkpoint.sha256


class UpscalePipeline:
    """Upscale images with a baseline interpolation or an SR network; see the module docstring."""

    def __init__(
        self,
        model: str | Path | nn.Module | None = None,
        *,
        scale: int | None = None,
        device: str = "auto",
        precision: str = "auto",
    ):
        require(scale is None or scale in SCALES, "scale", scale, "one of 2, 3, 4")
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.network: nn.Module | None = None
        self.sha256: str | None = None
        if model is None:
            require(scale is not None, "scale", scale, "2, 3 or 4 when no model is named")
            model = default_model(scale)
        if isinstance(model, nn.Module):
            self.network, self.name = model, type(model).__name__.lower()
        elif str(model) in BASELINES:
            require(scale is not None, "scale", scale, f"2, 3 or 4 for the {model} baseline")
            self.name = str(model)
        else:
            self.network, self.name, self.sha256 = _load_network(str(model))
        self.scale = self._check_scale(scale)
        if self.network is not None:
            self.network = self.network.eval().to(
                self.device, memory_format=memory_format(self.precision)
            )

    def _check_scale(self, scale: int | None) -> int:
        """The requested scale, which must equal the network's own when there is one."""
        if self.network is None:
            return scale
        own = getattr(getattr(self.network, "config", None), "scale", None)
        require(own in SCALES, "model", self.name, "a network whose config has a scale of 2, 3, 4")
        require(
            scale is None or scale == own,
            "scale",
            scale,
            f"{own}, the scale {self.name} was trained for",
        )
        return own

    def describe(self) -> dict[str, Any]:
        """The model part of the metadata (name, sha256, scale)."""
        return {"model": self.name, "model_sha256": self.sha256, "scale": self.scale}

    def __call__(
        self,
        image: Image.Image | np.ndarray,
        *,
        tile: int | None = None,
        tile_overlap: int | None = None,
        outscale: float | None = None,
        self_ensemble: bool = False,
    ) -> Result:
        """Upscale one image (PIL or HxW[xC] array: uint8, uint16 or float in [0, 1])."""
        require(tile is None or tile >= 16, "tile", tile, "an integer >= 16, or None")
        require(
            outscale is None or 0 < outscale <= MAX_OUTSCALE,
            "outscale",
            outscale,
            f"a number in (0, {MAX_OUTSCALE}]",
        )
        overlap = resolve_overlap(tile, tile_overlap)
        array = image_to_array(image)
        check_output_size(array.shape[:2], self.scale, outscale)
        upscaled = self.upscale_array(
            array, tile=tile, tile_overlap=overlap, self_ensemble=self_ensemble
        )
        if outscale is not None:
            height, width = array.shape[:2]
            upscaled = resize_array(
                upscaled, (max(1, round(height * outscale)), max(1, round(width * outscale)))
            )
        step = {
            **self.describe(),
            "step": "upscale",
            "tile": tile,
            "tile_overlap": overlap,
            "outscale": outscale,
            "self_ensemble": self_ensemble if self.network is not None else None,
            "precision": self.precision if self.network is not None else None,
            "pixloom_version": __version__,
        }
        return Result(array_to_images(upscaled), [upscaled], [step])

    def upscale_array(
        self,
        array: np.ndarray,
        *,
        tile: int | None = None,
        tile_overlap: int = 8,
        self_ensemble: bool = False,
    ) -> np.ndarray:
        """float32 HxWxC in [0, 1] (C = 1..4) -> HxW x scale, same channels; alpha bicubic."""
        gray = array.shape[2] in (1, 2)
        colour = np.repeat(array[..., :1], 3, axis=2) if gray else array[..., :3]
        alpha = array[..., -1:] if array.shape[2] in (2, 4) else None
        size = (array.shape[0] * self.scale, array.shape[1] * self.scale)
        if self.network is None:
            out = _resize_pil(colour, size, BASELINES[self.name])
        else:
            out = self._run_network(colour, tile, tile_overlap, self_ensemble)
        if gray:  # the network sees three equal channels; give one back
            out = out.mean(axis=2, keepdims=True)
        if alpha is not None:
            out = np.concatenate([out, resize_array(alpha, size)], axis=2)
        return np.ascontiguousarray(out.clip(0, 1), dtype=np.float32)

    @torch.no_grad()
    def _run_network(
        self, colour: np.ndarray, tile: int | None, overlap: int, self_ensemble: bool
    ) -> np.ndarray:
        """Run the network (tiled or whole) under the resolved precision; fp32 retry on NaN (G1).
        With `self_ensemble`, each window is the mean over the 8 dihedral transforms (EDSR+)."""
        x = torch.from_numpy(np.ascontiguousarray(colour)).permute(2, 0, 1)[None]  # (1, 3, H, W)
        for precision in dict.fromkeys([self.precision, "fp32"]):

            def forward(batch: torch.Tensor, precision=precision) -> torch.Tensor:
                batch = batch.to(self.device, memory_format=memory_format(precision))
                with autocast(self.device, precision):
                    return self.network(batch).float()

            if self_ensemble:
                forward = dihedral_mean(forward)
            out = run_tiled(forward, x, scale=self.scale, tile=tile, overlap=overlap)
            if torch.isfinite(out).all():
                return out[0].permute(1, 2, 0).cpu().numpy()
        raise PixloomError(f"{self.name} produced non-finite pixels even in fp32")


def dihedral_mean(
    forward: Callable[[torch.Tensor], torch.Tensor],
) -> Callable[[torch.Tensor], torch.Tensor]:
    """`forward` averaged over the 8 flips and 90-degree rotations of its (B, C, H, W) input,
    each output mapped back first: the geometric self-ensemble of EDSR+ (Lim et al. 2017)."""

    def averaged(batch: torch.Tensor) -> torch.Tensor:
        total = None
        for turns in range(4):
            for flip in (False, True):
                x = batch.rot90(turns, (-2, -1))
                x = x.flip(-1) if flip else x
                y = forward(x)
                y = y.flip(-1) if flip else y
                y = y.rot90(-turns, (-2, -1))
                total = y if total is None else total + y
        return total / 8

    return averaged


def from_checkpoint(model: nn.Module, checkpoint: Any, *, device: Any = "auto") -> UpscalePipeline:
    """Pipeline factory for pixloom.api.load: a loaded SR network and its Checkpoint."""
    pipe = UpscalePipeline(model, device=device)
    pipe.name, pipe.sha256 = Path(checkpoint.path).name, checkpoint.sha256
    return pipe


def resize_array(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resize of float HxWxC to (height, width), antialiased (PIL's filter)."""
    x = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None]  # (1, C, H, W)
    y = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)
    return y[0].permute(1, 2, 0).clamp(0, 1).numpy()


def _resize_pil(array: np.ndarray, size: tuple[int, int], method: Image.Resampling) -> np.ndarray:
    """Resize HxWx3 with a PIL filter: 8-bit data as PIL resizes RGB (the published baselines),
    deeper data per channel in float ("F") mode so no precision is lost."""
    levels = array * 255
    if np.abs(levels - np.round(levels)).max() < 1e-3:
        pixels = Image.fromarray(np.round(levels).astype(np.uint8))
        return np.asarray(pixels.resize(size[::-1], method), dtype=np.float32) / 255
    channels = [
        np.asarray(Image.fromarray(array[..., c].astype(np.float32)).resize(size[::-1], method))
        for c in range(array.shape[2])
    ]
    return np.stack(channels, axis=2)
