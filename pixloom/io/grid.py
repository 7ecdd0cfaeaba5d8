"""Contact sheets: images in a grid with wrapped captions under each (PIL's default font)."""

from __future__ import annotations

import math

from PIL import Image, ImageDraw, ImageFont

from pixloom.errors import InvalidValue

_PADDING = 4
_BACKGROUND = (255, 255, 255)
_TEXT = (0, 0, 0)


def _wrap(text: str, font: ImageFont.ImageFont, width: int, draw: ImageDraw.ImageDraw) -> list:
    """Greedy word wrap so every line fits `width` pixels (a long word gets its own line)."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}".strip()
            if line and draw.textlength(candidate, font=font) > width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines


def make_grid(
    images: list[Image.Image],
    captions: list[str] | None = None,
    columns: int | None = None,
    caption_height: int | None = None,
) -> Image.Image:
    """Tile images (RGB) row by row; captions are wrapped to the cell width beneath each.

    Args:
        columns: images per row; None picks ceil(sqrt(n)).
        caption_height: pixels reserved under each image; None fits the longest caption.
    """
    if not images:
        raise InvalidValue("images", images, "a non-empty list of PIL images")
    if captions is not None and len(captions) != len(images):
        raise InvalidValue("captions", len(captions), f"one caption per image ({len(images)})")
    if columns is None:
        columns = math.ceil(math.sqrt(len(images)))
    if columns < 1:
        raise InvalidValue("columns", columns, "a positive integer or None")
    if caption_height is not None and caption_height < 0:
        raise InvalidValue("caption_height", caption_height, "a non-negative integer or None")
    cell_width = max(image.width for image in images)
    cell_height = max(image.height for image in images)
    font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_height = measure.textbbox((0, 0), "Ag", font=font)[3] + 2
    wrapped = [_wrap(text, font, cell_width, measure) for text in captions or []]
    if caption_height is None:
        caption_height = max((len(lines) * line_height for lines in wrapped), default=0)
    rows = math.ceil(len(images) / columns)
    step_x = cell_width + _PADDING
    step_y = cell_height + caption_height + _PADDING
    sheet = Image.new("RGB", (columns * step_x + _PADDING, rows * step_y + _PADDING), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for i, image in enumerate(images):
        left = _PADDING + (i % columns) * step_x
        top = _PADDING + (i // columns) * step_y
        sheet.paste(image.convert("RGB"), (left + (cell_width - image.width) // 2, top))
        for k, line in enumerate(wrapped[i] if wrapped else []):
            y = top + cell_height + k * line_height
            if y + line_height > top + cell_height + caption_height:
                break  # a fixed caption_height cuts long captions instead of overlapping
            draw.text((left, y), line, fill=_TEXT, font=font)
    return sheet
