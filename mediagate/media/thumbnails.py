"""Small derived images of result images, for galleries: the longest side at most
THUMBNAIL_SIDE px, as WebP (a few tens of KB instead of a multi-megabyte PNG)."""

import io
import threading
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from mediagate.media.images import PIL_FORMATS, sniff_format

THUMBNAIL_SIDE = 384
THUMBNAIL_QUALITY = 80
THUMBNAIL_THREADS = 2
"""Thumbnails decoded at once per process: decoding holds the whole result (a 4096 px
square RGBA image is 64 MiB), and many store steps run at once; the rest wait."""
_decoding = threading.BoundedSemaphore(THUMBNAIL_THREADS)


class ThumbnailFailed(ValueError):
    """Pillow could not scale this image down."""


@dataclass(frozen=True)
class Thumbnail:
    data: bytes
    width: int
    height: int


def make_thumbnail(path: Path) -> Thumbnail:
    """The image at `path` (already checked by `inspect_image`: a PNG, JPEG or WebP of a
    bounded size) scaled down to fit THUMBNAIL_SIDE, as WebP; smaller images keep their
    size. Blocking: run it in a thread. ThumbnailFailed if Pillow cannot read it."""
    try:
        return _scaled(path)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ThumbnailFailed(f"{type(exc).__name__}: {exc}") from exc


def _scaled(path: Path) -> Thumbnail:
    with path.open("rb") as f:
        fmt = sniff_format(f.read(12))
    if fmt is None:
        raise ValueError("not an image")
    with _decoding, Image.open(path, formats=[PIL_FORMATS[fmt]]) as image:
        # JPEG can decode at 1/2, 1/4 or 1/8 scale directly: far less memory and time.
        image.draft("RGB", (THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
        alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
        small = image.convert("RGBA" if alpha else "RGB")
    out = io.BytesIO()
    small.save(out, format="WEBP", quality=THUMBNAIL_QUALITY, method=4)
    return Thumbnail(out.getvalue(), small.width, small.height)
