"""Look at image bytes without trusting what anyone says about them."""

import io
import warnings
from dataclasses import dataclass

from PIL import Image

MAX_PIXELS = 64_000_000
MAGIC = {
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpeg": (b"\xff\xd8\xff",),
}
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}


class NotAnImage(ValueError):
    """The bytes are not an image of an accepted format"""


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


def inspect_image(data: bytes, formats: tuple[str, ...] = ("png", "jpeg", "webp")) -> ImageInfo:
    """Format and size from the header alone: nothing is decoded here."""
    fmt = sniff_format(data)
    if fmt is None or fmt not in formats:
        raise NotAnImage(f"not a {', '.join(formats)} image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[PIL_FORMATS[fmt]]) as image:
                width, height = image.size
    except (
        OSError,
        ValueError,
        Image.DecompressionBombWarning,
        Image.DecompressionBombError,
    ) as exc:
        raise NotAnImage(f"unreadable {fmt} image") from exc
    if width <= 0 or height <= 0 or width * height > MAX_PIXELS:
        raise NotAnImage(f"{width}×{height} is outside the accepted pixel count")
    return ImageInfo(fmt, width, height)
