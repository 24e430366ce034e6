"""Placeholder images for test mode: the requested size, clearly marked SANDBOX."""

import hashlib
import io
import math
import textwrap

from PIL import Image, ImageDraw, ImageFont

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
    *, prompt: str, aspect_ratio: str, resolution: str, index: int, total: int, label: str = ""
) -> bytes:
    """A deterministic PNG for these inputs."""
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
    caption = f"{index + 1}/{total} · {width}x{height} · {aspect_ratio} · {resolution}"
    if label:
        caption = f"{label} · {caption}"
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
