"""Placeholder images for test mode: the requested size, clearly marked SANDBOX."""

import hashlib
import io
import math
import textwrap

from PIL import Image, ImageDraw, ImageFont, ImageOps

PIXELS = {"1k": 1024 * 1024, "2k": 2048 * 2048}
SQUARE = "1:1"
VIEWS = ("front", "three-quarter left", "profile right", "back")


def output_size(aspect_ratio: str, resolution: str) -> tuple[int, int]:
    """About 1 MP (1k) or 4 MP (2k) at the ratio, both sides multiples of 16."""
    ratio = SQUARE if aspect_ratio == "auto" else aspect_ratio
    w, h = (int(x) for x in ratio.split(":"))
    pixels = PIXELS[resolution]
    width = math.sqrt(pixels * w / h)
    height = math.sqrt(pixels * h / w)
    return _multiple_of_16(width), _multiple_of_16(height)


def _multiple_of_16(x: float) -> int:
    return max(16, round(x / 16) * 16)


def render(
    *,
    prompt: str,
    aspect_ratio: str,
    resolution: str,
    index: int,
    total: int,
    references: list[bytes] | None = None,
    view: str | None = None,
) -> bytes:
    """A deterministic PNG for these inputs: the reference images composited along the
    bottom, or, for a multi-shot `view`, the subject (references[0]) shown from that view."""
    references = references or []
    width, height = output_size(aspect_ratio, resolution)
    seed = hashlib.sha256(f"{prompt}|{aspect_ratio}|{resolution}|{index}".encode()).digest()
    top, bottom = seed[:3], seed[3:6]
    # Draw small, scale up: a smooth gradient at a fraction of the cost.
    small = Image.new("RGB", (1, 64))
    for row in range(64):
        t = row / 63
        small.putpixel(
            (0, row), tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        )
    image = small.resize((width, height), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image)
    unit = max(12, min(width, height) // 14)
    big = ImageFont.load_default(size=unit * 2)
    small_font = ImageFont.load_default(size=max(10, unit // 2))
    margin = unit
    draw.rectangle((0, 0, width - 1, height - 1), outline=(255, 255, 255), width=max(4, unit // 6))
    draw.text(
        (margin, margin),
        "SANDBOX",
        font=big,
        fill=(255, 255, 255),
        stroke_width=3,
        stroke_fill=(0, 0, 0),
    )
    if view is not None and references:
        _paste_view(image, references[0], view)
    elif references:
        _paste_strip(image, references)
    caption = f"{index + 1}/{total} · {width}x{height} · {aspect_ratio} · {resolution}"
    if view is not None:
        caption = f"view: {view} · {caption}"
    draw.text((margin, margin + unit * 2.4), caption, font=small_font, fill=(255, 255, 255))
    wrap = max(20, int(width / (unit * 0.3)))
    lines = textwrap.wrap(prompt, wrap)[:8]
    y = margin + unit * 3.4
    for line in lines:
        draw.text(
            (margin, y),
            line,
            font=small_font,
            fill=(255, 255, 255),
            stroke_width=1,
            stroke_fill=(0, 0, 0),
        )
        y += unit * 0.7
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def _open_small(data: bytes, box: tuple[int, int]) -> Image.Image:
    """Decode a checked reference at about the size it will be shown (JPEG draft mode)."""
    with Image.open(io.BytesIO(data)) as source:
        source.draft("RGB", box)
        image = source.convert("RGB")
    image.thumbnail(box)
    return image


def _paste_strip(canvas: Image.Image, references: list[bytes]) -> None:
    width, height = canvas.size
    cell = (width - 32) // max(len(references), 4)
    box = (cell - 12, height // 4)
    x = 16
    for data in references:
        thumb = _open_small(data, box)
        y = height - thumb.height - 16
        ImageDraw.Draw(canvas).rectangle(
            (x - 3, y - 3, x + thumb.width + 2, y + thumb.height + 2), fill=(255, 255, 255)
        )
        canvas.paste(thumb, (x, y))
        x += cell


def _paste_view(canvas: Image.Image, subject: bytes, view: str) -> None:
    width, height = canvas.size
    image = _open_small(subject, (int(width * 0.6), int(height * 0.6)))
    if view == "profile right":
        image = ImageOps.mirror(image)
    elif view == "three-quarter left":
        image = image.rotate(8, expand=True, fillcolor=(255, 255, 255))
    elif view == "back":
        image = ImageOps.grayscale(image).convert("RGB")
    canvas.paste(image, ((width - image.width) // 2, (height - image.height) // 2))
