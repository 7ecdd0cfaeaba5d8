"""Low-resolution inputs made from high-resolution images for super-resolution training.

Two kinds:
- "bicubic": the classic protocol (antialiased bicubic downscale, the same filter as PIL's
  BICUBIC that the Set5 tables use).
- "real": the Real-ESRGAN second-order blind degradation (Wang et al. 2021,
  arXiv:2107.10833): twice blur -> random resize -> Gaussian/Poisson noise -> JPEG, then a
  sinc (ringing) filter and a resize to the target size, in random order with JPEG.

All randomness comes from the `seed` argument (a numpy Generator and a torch Generator made
from it), never from global RNG state, so a sample's LR image is reproducible.
Images are float tensors in [0, 1], (C, H, W) or (B, C, H, W).
"""

from __future__ import annotations

import functools
import io
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from pixloom.errors import require

DEGRADATIONS = ("bicubic", "real")


def bicubic_downscale(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """Antialiased bicubic downscale by `scale` (matches PIL BICUBIC); H and W must divide."""
    batched = hr if hr.dim() == 4 else hr.unsqueeze(0)
    h, w = batched.shape[-2:]
    require(h % scale == 0 and w % scale == 0, "scale", scale, f"a divisor of the size {h}x{w}")
    lr = F.interpolate(batched, size=(h // scale, w // scale), mode="bicubic", antialias=True)
    lr = lr.clamp(0, 1)
    return lr if hr.dim() == 4 else lr[0]


@dataclass
class RealDegradationConfig:
    """Probabilities and ranges of the blind degradation; defaults are Real-ESRGAN's x4 ones."""

    kernel_size_range: tuple[int, int] = (7, 21)  # odd sizes drawn in this range
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    blur_sigma2: tuple[float, float] = (0.2, 1.5)
    second_blur_prob: float = 0.8
    generalized_prob: float = 0.15  # generalized Gaussian (shape beta) instead of Gaussian
    sinc_prob: float = 0.1  # sinc kernel instead of a blur in each stage
    final_sinc_prob: float = 0.8
    resize_probs: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: tuple[float, float] = (0.15, 1.5)
    resize_range2: tuple[float, float] = (0.3, 1.2)
    gaussian_noise_prob: float = 0.5  # else Poisson
    noise_range: tuple[float, float] = (1.0, 30.0)  # sigma on the 0..255 scale
    noise_range2: tuple[float, float] = (1.0, 25.0)
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    poisson_scale_range2: tuple[float, float] = (0.05, 2.5)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[int, int] = (30, 95)
    jpeg_range2: tuple[int, int] = (30, 95)

    def __post_init__(self):
        low, high = self.kernel_size_range
        require(
            3 <= low <= high <= 31,
            "kernel_size_range",
            self.kernel_size_range,
            "3 <= low <= high <= 31",
        )
        require(
            abs(sum(self.resize_probs) - 1) < 1e-6,
            "resize_probs",
            self.resize_probs,
            "three probabilities summing to 1",
        )
        for name in ("jpeg_range", "jpeg_range2"):
            lo, hi = getattr(self, name)
            require(1 <= lo <= hi <= 100, name, (lo, hi), "qualities with 1 <= low <= high <= 100")


# ---------------------------------------------------------------- kernels


def gaussian_kernel(
    size: int, sigma_x: float, sigma_y: float, theta: float, beta: float = 2.0
) -> torch.Tensor:
    """Anisotropic (generalized, shape `beta`) Gaussian kernel, normalized to sum 1."""
    axis = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    cos, sin = math.cos(theta), math.sin(theta)
    u, v = cos * xx + sin * yy, -sin * xx + cos * yy  # rotate into the kernel's axes
    distance = (u / sigma_x) ** 2 + (v / sigma_y) ** 2
    kernel = torch.exp(-0.5 * distance ** (beta / 2))
    return (kernel / kernel.sum()).float()


def sinc_kernel(size: int, cutoff: float) -> torch.Tensor:
    """Circular low-pass (2-D sinc / jinc) kernel: models ringing and overshoot artefacts."""
    axis = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    radius = torch.sqrt(xx**2 + yy**2).clamp_min(1e-8)
    bessel = torch.special.bessel_j1(cutoff * radius)
    kernel = cutoff * bessel / (2 * math.pi * radius)
    kernel[radius < 1e-6] = cutoff**2 / (4 * math.pi)
    return (kernel / kernel.sum()).float()


def filter2d(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve each channel of (C, H, W) with `kernel` (k, k), reflect-padded (edges kept)."""
    pad = kernel.shape[-1] // 2
    channels = image.shape[0]
    padded = F.pad(
        image[None], (pad,) * 4, mode="reflect" if min(image.shape[-2:]) > pad else "replicate"
    )
    weight = kernel.to(image).expand(channels, 1, *kernel.shape)
    return F.conv2d(padded, weight, groups=channels)[0]


def random_blur_kernel(
    rng: np.random.Generator, config: RealDegradationConfig, sigma: tuple
) -> torch.Tensor:
    """One random kernel: Gaussian (iso or aniso), generalized Gaussian, or sinc."""
    low, high = config.kernel_size_range
    size = int(rng.integers(low // 2, high // 2 + 1)) * 2 + 1
    if rng.random() < config.sinc_prob:
        cutoff = (
            rng.uniform(math.pi / 3, math.pi) if size < 13 else rng.uniform(math.pi / 5, math.pi)
        )
        return sinc_kernel(size, cutoff)
    sigma_x, sigma_y = rng.uniform(*sigma), rng.uniform(*sigma)
    if rng.random() < 0.5:  # isotropic half of the time
        sigma_y = sigma_x
    beta = rng.uniform(0.5, 4.0) if rng.random() < config.generalized_prob else 2.0
    return gaussian_kernel(size, sigma_x, sigma_y, rng.uniform(0, math.pi), beta)


# ---------------------------------------------------------------- steps


def random_resize(
    image: torch.Tensor, size: tuple[int, int], rng: np.random.Generator
) -> torch.Tensor:
    """Resize (C, H, W) to `size` with a randomly chosen interpolation (area/bilinear/bicubic)."""
    mode = ("area", "bilinear", "bicubic")[int(rng.integers(3))]
    kwargs = {} if mode == "area" else {"align_corners": False, "antialias": True}
    return F.interpolate(image[None], size=size, mode=mode, **kwargs)[0]


def add_noise(
    image: torch.Tensor, generator: torch.Generator, *, gaussian: bool, level: float, gray: bool
) -> torch.Tensor:
    """Gaussian (sigma `level`/255) or Poisson (scale `level`) noise, colour or grayscale."""
    shape = (1, *image.shape[1:]) if gray else image.shape
    if gaussian:
        noise = torch.randn(shape, generator=generator) * (level / 255)
    else:
        # Poisson noise of the image quantized to 8 bits, scaled (Real-ESRGAN's model)
        values = (image.clamp(0, 1) * 255).round()
        base = values.mean(0, keepdim=True) if gray else values
        noise = (torch.poisson(base, generator=generator) - base) / 255 * level
    return image + noise.expand_as(image)


def jpeg_compress(image: torch.Tensor, quality: int) -> torch.Tensor:
    """Round-trip (C, H, W) in [0, 1] through PIL's JPEG encoder at `quality`."""
    array = (image.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array).save(
        buffer, "JPEG", quality=quality
    )
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())), dtype=np.float32) / 255
    decoded = decoded[..., None] if decoded.ndim == 2 else decoded
    return torch.from_numpy(decoded).permute(2, 0, 1).contiguous()


def _stage(image, rng, generator, config, *, second: bool, target=None) -> torch.Tensor:
    """One blur -> resize -> noise pass (JPEG is applied by the caller).

    The first pass resizes the current image; the second resizes relative to the final
    LR size `target`, as Real-ESRGAN does.
    """
    if not second or rng.random() < config.second_blur_prob:
        image = filter2d(
            image,
            random_blur_kernel(rng, config, config.blur_sigma2 if second else config.blur_sigma),
        )
    direction = rng.choice(3, p=config.resize_probs)
    low, high = config.resize_range2 if second else config.resize_range
    factor = (rng.uniform(1, high), rng.uniform(low, 1), 1.0)[direction]
    h, w = target if second else image.shape[-2:]
    image = random_resize(image, (max(1, round(h * factor)), max(1, round(w * factor))), rng)
    gaussian = rng.random() < config.gaussian_noise_prob
    if gaussian:
        level = rng.uniform(*(config.noise_range2 if second else config.noise_range))
    else:
        level = rng.uniform(
            *(config.poisson_scale_range2 if second else config.poisson_scale_range)
        )
    gray = rng.random() < config.gray_noise_prob
    return add_noise(image, generator, gaussian=gaussian, level=level, gray=gray).clamp(0, 1)


def degrade_real(
    hr: torch.Tensor, scale: int, seed: int, config: RealDegradationConfig | None = None
) -> torch.Tensor:
    """Real-ESRGAN second-order degradation of one (C, H, W) image to (C, H/scale, W/scale)."""
    config = config or RealDegradationConfig()
    h, w = hr.shape[-2:]
    require(h % scale == 0 and w % scale == 0, "scale", scale, f"a divisor of the size {h}x{w}")
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    image = hr.detach().float().cpu()
    image = _stage(image, rng, generator, config, second=False)
    image = jpeg_compress(image, int(rng.integers(config.jpeg_range[0], config.jpeg_range[1] + 1)))
    target = (h // scale, w // scale)
    image = _stage(image, rng, generator, config, second=True, target=target)
    final_kernel = sinc_kernel(int(rng.integers(3, 11)) * 2 + 1, rng.uniform(math.pi / 3, math.pi))
    use_sinc = rng.random() < config.final_sinc_prob
    quality = int(rng.integers(config.jpeg_range2[0], config.jpeg_range2[1] + 1))
    if rng.random() < 0.5:  # resize + sinc, then JPEG
        image = random_resize(image, target, rng)
        image = filter2d(image, final_kernel) if use_sinc else image
        image = jpeg_compress(image, quality)
    else:  # JPEG, then resize + sinc
        image = jpeg_compress(image, quality)
        image = random_resize(image, target, rng)
        image = filter2d(image, final_kernel) if use_sinc else image
    # the LR a camera would deliver is 8-bit
    return ((image.clamp(0, 1) * 255).round() / 255).to(hr.dtype)


def make_lr(
    hr: torch.Tensor,
    scale: int,
    *,
    kind: Literal["bicubic", "real"] = "bicubic",
    seeds: list[int] | None = None,
    config: RealDegradationConfig | None = None,
) -> torch.Tensor:
    """LR batch (B, C, H/s, W/s) from an HR batch in [0, 1]; "real" needs one seed per image."""
    require(kind in DEGRADATIONS, "degradation", kind, f"one of {', '.join(DEGRADATIONS)}")
    if kind == "bicubic":
        return bicubic_downscale(hr, scale)
    require(seeds is not None and len(seeds) == hr.shape[0], "seeds", seeds, "one seed per image")
    # Each image has its own seed, so threads give the same pixels in any order; the torch
    # filters and PIL's JPEG coder release the GIL, so the batch spreads over the cores that
    # torch's own threads leave idle (a GPU run with OMP_NUM_THREADS=1 on 16 cores: 16).
    workers = min(len(seeds), (os.cpu_count() or 1) // torch.get_num_threads())
    if workers <= 1:
        return torch.stack([degrade_real(image, scale, s, config) for image, s in zip(hr, seeds)])
    images = _pool(workers, os.getpid()).map(
        lambda pair: degrade_real(pair[0], scale, pair[1], config), zip(hr, seeds)
    )
    return torch.stack(list(images))


@functools.cache
def _pool(workers: int, pid: int) -> ThreadPoolExecutor:
    """One thread pool per worker count for the life of the process (make_lr runs every step);
    keyed by pid because a forked child inherits the cache but not the pool's threads."""
    return ThreadPoolExecutor(max_workers=workers)
