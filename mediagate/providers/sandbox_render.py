"""Placeholder images for test mode: the requested size, clearly marked SANDBOX."""

import hashlib
import io
import math
import textwrap

from PIL import Image, ImageDraw, ImageFont, ImageOps

PIXELS = {"1k": 1024 * 1024, "2k": 2048 * 2048}
SQUARE = "1:1"
VIEWS = ("front", "three-quarter left", "profile right", "back")
DECODABLE = ["PNG", "JPEG", "WEBP"]


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


def reference_box(size: tuple[int, int], count: int, *, multi_shot: bool) -> tuple[int, int]:
    """The most a reference is ever drawn at on an output of `size`: a cell of the strip
    along the bottom, or 60% of the canvas for a multi-shot subject."""
    width, height = size
    if multi_shot:
        return int(width * 0.6), int(height * 0.6)
    cell = (width - 32) // max(count, 4)
    return cell - 12, height // 4


def thumbnail(data: bytes, box: tuple[int, int]) -> Image.Image:
    """Decode a checked reference once and shrink it to fit `box` (RGB).

    Memory stays near what decoding itself takes (`decoded_bytes` in media/images.py):
    JPEG decodes at 1/2..1/8 scale in draft mode; anything else is decimated to at most
    twice the box before the filtered resize, so the full-size image is never copied
    (Pillow's filtered resize of RGBA/LA first makes a premultiplied copy of all of it)."""
    with Image.open(io.BytesIO(data), formats=DECODABLE) as source:
        source.draft("RGB", box)
        image: Image.Image = source
        scale = min(2 * box[0] / image.width, 2 * box[1] / image.height)
        if scale < 1:
            rough = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            image = image.resize(rough, Image.Resampling.NEAREST)
        # No reducing gap: Image.reduce refuses some modes (I;16), and we are close already.
        image.thumbnail(box, reducing_gap=None)
        return image.convert("RGB")


def gradient(seed: str, size: tuple[int, int]) -> Image.Image:
    """A vertical two-colour gradient picked by `seed` (the same seed, the same image)."""
    digest = hashlib.sha256(seed.encode()).digest()
    top, bottom = digest[:3], digest[3:6]
    # Draw small, scale up: a smooth gradient at a fraction of the cost.
    small = Image.new("RGB", (1, 64))
    for row in range(64):
        t = row / 63
        small.putpixel(
            (0, row), tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        )
    return small.resize(size, Image.Resampling.BILINEAR)


def render(
    *,
    prompt: str,
    aspect_ratio: str,
    resolution: str,
    index: int,
    total: int,
    size: tuple[int, int] | None = None,
    references: list[Image.Image] | None = None,
    view: str | None = None,
) -> bytes:
    """A deterministic PNG for these inputs: the reference thumbnails composited along the
    bottom, or, for a multi-shot `view`, the subject (references[0]) shown from that view.
    References come from `thumbnail` at `reference_box`, so nothing large is decoded here."""
    references = references or []
    width, height = size or output_size(aspect_ratio, resolution)
    image = gradient(f"{prompt}|{aspect_ratio}|{resolution}|{index}", (width, height))
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


def _fit(image: Image.Image, box: tuple[int, int]) -> Image.Image:
    if image.width <= box[0] and image.height <= box[1]:
        return image
    image = image.copy()
    image.thumbnail(box)
    return image


def _paste_strip(canvas: Image.Image, references: list[Image.Image]) -> None:
    width, height = canvas.size
    cell = (width - 32) // max(len(references), 4)
    box = reference_box(canvas.size, len(references), multi_shot=False)
    x = 16
    for reference in references:
        thumb = _fit(reference, box)
        y = height - thumb.height - 16
        ImageDraw.Draw(canvas).rectangle(
            (x - 3, y - 3, x + thumb.width + 2, y + thumb.height + 2), fill=(255, 255, 255)
        )
        canvas.paste(thumb, (x, y))
        x += cell


def _paste_view(canvas: Image.Image, subject: Image.Image, view: str) -> None:
    width, height = canvas.size
    image = _fit(subject, reference_box(canvas.size, 1, multi_shot=True))
    if view == "profile right":
        image = ImageOps.mirror(image)
    elif view == "three-quarter left":
        image = image.rotate(8, expand=True, fillcolor=(255, 255, 255))
    elif view == "back":
        image = ImageOps.grayscale(image).convert("RGB")
    canvas.paste(image, ((width - image.width) // 2, (height - image.height) // 2))
