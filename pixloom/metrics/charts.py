"""Inline SVG charts for self-contained HTML reports: lines over steps and bars with intervals.

Each function returns an `<svg>` string with no external references, so a report opens
from disk without a server or network.
"""

from __future__ import annotations

import html
import math

PALETTE = ("#3366cc", "#dc3912", "#ff9900", "#109618", "#990099", "#0099c6")
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 16, 28, 36


def _tick(value: float) -> str:
    """A compact tick label."""
    return f"{value:.4g}"


def _scale(low: float, high: float, start: float, end: float):
    """Linear map from [low, high] to pixel range [start, end] (a flat range maps to the middle)."""
    if high == low:
        return lambda value: (start + end) / 2
    return lambda value: start + (value - low) * (end - start) / (high - low)


def svg_line_chart(
    series: dict[str, list[tuple[float, float]]],
    *,
    title: str,
    width: int = 640,
    height: int = 240,
) -> str:
    """Lines of (x, y) points, one per named series, with axes, ticks and a legend."""
    points = [(x, y) for values in series.values() for x, y in values if math.isfinite(y)]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}">',
        f'<text x="{MARGIN_LEFT}" y="18" font-size="13" font-weight="bold">'
        f"{html.escape(title)}</text>",
    ]
    if not points:
        parts.append(f'<text x="{MARGIN_LEFT}" y="{height / 2}" font-size="12">no data</text>')
        return "".join(parts) + "</svg>"
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    to_x = _scale(min(xs), max(xs), MARGIN_LEFT, width - MARGIN_RIGHT)
    to_y = _scale(min(ys), max(ys), height - MARGIN_BOTTOM, MARGIN_TOP)
    bottom, right = height - MARGIN_BOTTOM, width - MARGIN_RIGHT
    parts.append(
        f'<polyline fill="none" stroke="#888" points="{MARGIN_LEFT},{MARGIN_TOP} '
        f'{MARGIN_LEFT},{bottom} {right},{bottom}"/>'
    )
    for value, y in ((min(ys), bottom), (max(ys), MARGIN_TOP)):
        parts.append(
            f'<text x="{MARGIN_LEFT - 4}" y="{y + 4}" font-size="10" text-anchor="end">'
            f"{_tick(value)}</text>"
        )
    for value, x in ((min(xs), MARGIN_LEFT), (max(xs), right)):
        parts.append(
            f'<text x="{x}" y="{bottom + 14}" font-size="10" text-anchor="middle">'
            f"{_tick(value)}</text>"
        )
    for index, (name, values) in enumerate(series.items()):
        colour = PALETTE[index % len(PALETTE)]
        coords = " ".join(f"{to_x(x):.1f},{to_y(y):.1f}" for x, y in values if math.isfinite(y))
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{coords}"/>'
        )
        parts.append(
            f'<text x="{right - 4}" y="{MARGIN_TOP + 12 * index}" font-size="11" '
            f'text-anchor="end" fill="{colour}">{html.escape(name)}</text>'
        )
    parts.append(
        f'<text x="{(MARGIN_LEFT + right) / 2}" y="{height - 6}" font-size="10" '
        'text-anchor="middle">step</text>'
    )
    return "".join(parts) + "</svg>"


def svg_bar_chart(
    bars: list[tuple[str, float, float | None, float | None]],
    *,
    title: str,
    width: int = 640,
    maximum: float = 1.0,
) -> str:
    """Horizontal bars (label, value, low, high) on [0, maximum]; low/high draw an interval."""
    row, label_width = 22, 160
    height = MARGIN_TOP + row * len(bars) + 8
    to_x = _scale(0.0, maximum, label_width, width - MARGIN_RIGHT - 48)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}">',
        f'<text x="4" y="18" font-size="13" font-weight="bold">{html.escape(title)}</text>',
    ]
    for index, (label, value, low, high) in enumerate(bars):
        top = MARGIN_TOP + index * row
        middle = top + row / 2
        parts.append(
            f'<text x="{label_width - 6}" y="{middle + 4}" font-size="11" text-anchor="end">'
            f"{html.escape(label)}</text>"
            f'<rect x="{label_width}" y="{top + 3}" height="{row - 6}" '
            f'width="{max(to_x(value) - label_width, 0):.1f}" fill="{PALETTE[0]}"/>'
            f'<text x="{to_x(maximum) + 4}" y="{middle + 4}" font-size="11">{_tick(value)}</text>'
        )
        if low is not None and high is not None:
            parts.append(
                f'<line x1="{to_x(low):.1f}" x2="{to_x(high):.1f}" y1="{middle}" y2="{middle}" '
                'stroke="#222" stroke-width="1.5"/>'
            )
    return "".join(parts) + "</svg>"
