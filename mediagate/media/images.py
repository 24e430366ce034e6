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


class NotAnImage(ValueError):
    """The bytes are not an image of an accepted format"""


class ImageRejected(ValueError):
    """A reference image breaks one of the model's input rules."""


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int

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
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise NotAnImage(f"too many pixels (more than {max_pixels})") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise NotAnImage(f"not a readable {fmt.upper()} image") from exc
    if width <= 0 or height <= 0:
        raise NotAnImage(f"not a readable {fmt.upper()} image")
    if width * height > max_pixels:
        raise NotAnImage(f"too many pixels ({width}x{height}; at most {max_pixels})")
    return ImageInfo(fmt, width, height)


def check_reference(data: bytes, rules: InputRules) -> ImageInfo:
    """Format, size and shape checks of one reference image, from its header only."""
    if len(data) > rules.max_bytes:
        raise ImageRejected(f"too large ({len(data)} bytes; at most {rules.max_bytes})")
    try:
        info = inspect_image(data, rules.formats, max_pixels=rules.max_pixels)
    except NotAnImage as exc:
        raise ImageRejected(str(exc)) from exc
    short, long = sorted((info.width, info.height))
    size = f"{info.width}x{info.height}"
    if short < rules.min_side:
        raise ImageRejected(f"too small ({size}; each side must be at least {rules.min_side} px)")
    if long / short > rules.max_aspect:
        limit = f"{rules.max_aspect:g}"
        raise ImageRejected(
            f"aspect ratio out of range ({size}; must be between 1:{limit} and {limit}:1)"
        )
    return info
