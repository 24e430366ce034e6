"""Look at image bytes without trusting what anyone says about them."""

import io
import warnings
from dataclasses import dataclass

from PIL import Image

from mediagate.catalog.spec import InputRules

MAX_PIXELS = 64_000_000
"""Above this, an image is refused from its header alone (results and references)."""
MAGIC = {
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpeg": (b"\xff\xd8\xff",),
}
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}

# What Pillow 13 holds per pixel, by mode (measured: VmHWM of Image.new and of decoding
# 4000x4000 images). Bit depth in the file does not count: a 16-bit RGBA PNG opens as
# mode RGBA with rawmode "RGBA;16B", narrowed to 8 bits per channel row by row while it
# is decoded, so it holds 4 bytes per pixel, exactly like an 8-bit RGBA PNG (6000x6000:
# 144 MB either way; decoding it takes ~0.9 s with Paeth-filtered rows). RGB, LA, CMYK,
# YCbCr, I and F are stored in 4 bytes too; only 16-bit grey (I;16) keeps 2 bytes.
SMALL_MODES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
WIDE_MODE_BYTES = 4
# Canvases alive at once while Pillow decodes every frame (measured peaks):
# - WebP, still or animated, goes through libwebp's animation decoder: its current and
#   previous canvas (RGBA), the frame copied out as bytes, then Pillow's image: 4.
#   (Image.open already callocs the decoder's two canvases; untouched, they are not RSS.)
# - an animated PNG keeps the previous frame and a disposal canvas beside the image: 3.
# - a still PNG or a JPEG (each frame of a multi-picture JPEG in turn): 1.
# Peak, not total: Pillow holds one frame at a time, so more frames cost CPU, not memory.
WEBP_CANVASES = 4
ANIMATED_PNG_CANVASES = 3


class NotAnImage(ValueError):
    """The bytes are not an image of an accepted format"""


class ImageRejected(ValueError):
    """A reference image breaks one of the model's input rules."""


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int
    mode: str
    frames: int
    decoded_bytes: int
    """Peak memory Pillow needs to decode every frame (see `decoded_bytes`)."""

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]


def sniff_format(data: bytes) -> str | None:
    """The format named by the file's magic bytes (never by its Content-Type)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    for name, signatures in MAGIC.items():
        if any(data.startswith(s) for s in signatures):
            return name
    return None


def decoded_bytes(fmt: str, mode: str, width: int, height: int, frames: int) -> int:
    """The most memory decoding this image allocates at once, from its header."""
    canvas = width * height * SMALL_MODES.get(mode, WIDE_MODE_BYTES)
    if fmt == "webp":
        return canvas * WEBP_CANVASES
    if fmt == "png" and frames > 1:
        return canvas * ANIMATED_PNG_CANVASES
    return canvas


def inspect_image(
    data: bytes,
    formats: tuple[str, ...] = ("png", "jpeg", "webp"),
    *,
    max_pixels: int = MAX_PIXELS,
) -> ImageInfo:
    """Format and size from the header alone: nothing is decoded here. Pillow is opened
    only for the format the magic bytes name, never trusting Content-Type."""
    fmt = sniff_format(data)
    if fmt is None or fmt not in formats:
        expected = "/".join(f.upper() for f in formats)
        raise NotAnImage(f"not an image ({expected} expected)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[PIL_FORMATS[fmt]]) as image:
                width, height = image.size
                mode = image.mode
                frames = int(getattr(image, "n_frames", 1))
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise NotAnImage(f"too many pixels (more than {max_pixels})") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise NotAnImage(f"not a readable {fmt.upper()} image") from exc
    if width <= 0 or height <= 0:
        raise NotAnImage(f"not a readable {fmt.upper()} image")
    if width * height > max_pixels:
        raise NotAnImage(f"too many pixels ({width}x{height}; at most {max_pixels})")
    size = decoded_bytes(fmt, mode, width, height, frames)
    return ImageInfo(fmt, width, height, mode, frames, size)


def check_reference(data: bytes, rules: InputRules) -> ImageInfo:
    """Format, size, decoded size and shape checks of one reference image, from its
    header only."""
    if len(data) > rules.max_bytes:
        raise ImageRejected(f"too large ({len(data)} bytes; at most {rules.max_bytes})")
    try:
        info = inspect_image(data, rules.formats, max_pixels=rules.max_pixels)
    except NotAnImage as exc:
        raise ImageRejected(str(exc)) from exc
    short, long = sorted((info.width, info.height))
    size = f"{info.width}x{info.height}"
    if info.decoded_bytes > rules.max_decoded_bytes:
        frames = f", {info.frames} frames" if info.frames > 1 else ""
        raise ImageRejected(
            f"too large to decode ({size} {info.mode} {info.format.upper()}{frames}: "
            f"{info.decoded_bytes} bytes of memory; at most {rules.max_decoded_bytes})"
        )
    if short < rules.min_side:
        raise ImageRejected(f"too small ({size}; each side must be at least {rules.min_side} px)")
    if long / short > rules.max_aspect:
        limit = f"{rules.max_aspect:g}"
        raise ImageRejected(
            f"aspect ratio out of range ({size}; must be between 1:{limit} and {limit}:1)"
        )
    return info
