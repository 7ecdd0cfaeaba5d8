"""Seam-free tiled inference for image-to-image networks that upscale by an integer factor.

The image is cut into cores of `tile` x `tile` LR pixels. Each core is run through the
network with `overlap` pixels of extra context on every side (windows of tile + 2*overlap,
all the same shape so they batch), so neighbouring windows share a band of 2*overlap
pixels. Inside that band each window's output is weighted by a linear ramp that is 0 for
the outermost overlap/2 pixels (pure context: they are computed with too little context),
rises to 1 over the next `overlap` pixels, and the two ramps cross-fade (they sum to 1).
The weighted outputs are summed and divided by the summed weights. Sides on the image
border get no ramp. The whole image is reflect-padded by `border` pixels first (tiled or
not), so border pixels see mirrored context instead of the convolutions' zeros.
(Real-ESRGAN's tiling crops a context pad and pastes tiles edge to edge; the cross-fade
here keeps the seams of a trained network below one 8-bit level.)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from pixloom.errors import require


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Starts of windows of size `window` every `stride` pixels; the last one ends at `length`."""
    if length <= window:
        return [0]
    starts = list(range(0, length - window, stride))
    starts.append(length - window)
    return starts


def ramp(length: int, overlap: int, *, rise: bool, fall: bool) -> torch.Tensor:
    """1-D weights: 0 over the outer overlap/2, then linear up to 1 over `overlap`, per shared side."""
    weight = torch.ones(length)
    if overlap == 0:
        return weight
    distance = torch.arange(length, dtype=torch.float32) + 0.5  # from the start side
    if rise:
        weight = torch.minimum(weight, ((distance - overlap / 2) / overlap).clamp(0, 1))
    if fall:
        weight = torch.minimum(weight, ((length - distance - overlap / 2) / overlap).clamp(0, 1))
    return weight


def reflect_pad(x: torch.Tensor, border: int) -> torch.Tensor:
    """Pad (B, C, H, W) by `border` on every side, mirrored (replicated when too small)."""
    if border == 0:
        return x
    mode = "reflect" if min(x.shape[-2:]) > border else "replicate"
    return F.pad(x, (border,) * 4, mode=mode)


def run_tiled(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    scale: int,
    tile: int | None,
    overlap: int,
    border: int = 8,
    tiles_per_batch: int = 4,
) -> torch.Tensor:
    """Apply `fn` (B, C, h, w) -> (B, C', h*scale, w*scale) to x (1, C, H, W), tiled or whole.

    Args:
        tile: LR core side of a tile; None processes the whole (padded) image at once.
        overlap: LR context pixels added on each side of a core (windows of tile + 2*overlap);
            neighbouring windows are cross-faded over the shared band.
        border: reflect padding added around the image before processing, cropped after.
        tiles_per_batch: tiles run through `fn` together (same shape, so they batch).
    """
    require(x.dim() == 4 and x.shape[0] == 1, "image", tuple(x.shape), "a (1, C, H, W) tensor")
    padded = reflect_pad(x, border)
    window = None if tile is None else tile + 2 * overlap
    if window is None or (padded.shape[-2] <= window and padded.shape[-1] <= window):
        out = fn(padded).float()
    else:
        require(
            0 <= overlap < tile / 2, "tile_overlap", overlap, f"0 <= overlap < tile/2 = {tile / 2}"
        )
        out = _blend_tiles(
            fn, padded, scale=scale, tile=tile, overlap=overlap, batch=tiles_per_batch
        )
    s = scale
    return out[
        ..., border * s : out.shape[-2] - border * s, border * s : out.shape[-1] - border * s
    ]


def _blend_tiles(
    fn, x: torch.Tensor, *, scale: int, tile: int, overlap: int, batch: int
) -> torch.Tensor:
    """Run `fn` over overlapping tiles of x (1, C, H, W) and blend them into one output."""
    _, _, height, width = x.shape
    tile_h, tile_w = min(tile + 2 * overlap, height), min(tile + 2 * overlap, width)
    rows, cols = window_starts(height, tile_h, tile), window_starts(width, tile_w, tile)
    boxes = [(top, left) for top in rows for left in cols]
    s = scale
    out: torch.Tensor | None = None
    weight_sum = torch.zeros(1, 1, height * s, width * s)
    for first in range(0, len(boxes), batch):
        chunk = boxes[first : first + batch]
        inputs = torch.cat([x[..., t : t + tile_h, c : c + tile_w] for t, c in chunk])
        outputs = fn(inputs).float().cpu()  # (n, C', tile_h*s, tile_w*s)
        if out is None:
            out = torch.zeros(1, outputs.shape[1], height * s, width * s)
        for (top, left), tile_out in zip(chunk, outputs):
            weight = _tile_weight(top, left, tile_h, tile_w, height, width, overlap * s, s)
            region = (..., slice(top * s, (top + tile_h) * s), slice(left * s, (left + tile_w) * s))
            out[region] += tile_out * weight
            weight_sum[region] += weight
    return out / weight_sum


def _tile_weight(top, left, tile_h, tile_w, height, width, overlap_hr, s) -> torch.Tensor:
    """(tile_h*s, tile_w*s) weights of one window: ramps on sides not on the image border."""
    rows = ramp(tile_h * s, overlap_hr, rise=top > 0, fall=top + tile_h < height)
    cols = ramp(tile_w * s, overlap_hr, rise=left > 0, fall=left + tile_w < width)
    return rows[:, None] * cols[None, :]  # outer product: (tile_h*s, tile_w*s)
