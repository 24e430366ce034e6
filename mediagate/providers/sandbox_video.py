"""Placeholder videos for test mode: a real, short, playable MP4 (H.264, yuv420p), marked
SANDBOX, at the requested aspect ratio, exactly as long as asked, the same bytes for the
same request.

Cheap on purpose: a small frame rate, the long side capped, the text drawn once, and per
frame only a blend (when there are reference frames) and a moving marker. A 5 s clip at
640x360 renders in a fraction of a second on one core.
"""

import math
import tempfile
import textwrap
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from PIL import Image, ImageDraw, ImageFont, ImageOps

from mediagate.providers.sandbox_render import gradient

FPS = 10
MAX_LONG_SIDE = 640
SHORT_SIDES = {"480p": 480, "720p": 720, "1080p": 1080, "4k": 2160}
"""A resolution names the short side of the frame, as video models use it."""


def video_size(aspect_ratio: str, resolution: str) -> tuple[int, int]:
    """The frame at the ratio and resolution, scaled down to a long side of at most
    MAX_LONG_SIDE (even sides, as yuv420p needs)."""
    w, h = (int(x) for x in (aspect_ratio if ":" in aspect_ratio else "16:9").split(":"))
    short = SHORT_SIDES.get(resolution, 720)
    width, height = (short * w / h, short) if w >= h else (short, short * h / w)
    scale = min(1.0, MAX_LONG_SIDE / max(width, height))
    return _even(width * scale), _even(height * scale)


def _even(x: float) -> int:
    return max(2, round(x / 2) * 2)


def render_video(**params: Any) -> bytes:
    """`write_video` into a scratch file, read back (the muxer rewrites the file to put
    the index first, which it cannot do in memory)."""
    with tempfile.TemporaryDirectory(prefix="mediagate-sandbox-") as scratch:
        path = Path(scratch) / "video.mp4"
        write_video(path, **params)
        return path.read_bytes()


def write_video(
    path: Path,
    *,
    prompt: str,
    aspect_ratio: str,
    resolution: str,
    duration_s: float,
    first: Image.Image | None = None,
    last: Image.Image | None = None,
) -> None:
    """The MP4: `first` (then `last`) as the opening (closing) frame where given, the
    frames between blending from one to the other, a marker crossing the frame."""
    width, height = video_size(aspect_ratio, resolution)
    frames = max(1, round(duration_s * FPS))
    seed = f"{prompt}|{aspect_ratio}|{resolution}|{duration_s}"
    background = gradient(seed, (width, height))
    start = ImageOps.fit(first.convert("RGB"), (width, height)) if first else background
    end = ImageOps.fit(last.convert("RGB"), (width, height)) if last else start
    overlay = _text_layer((width, height), prompt, f"{width}x{height} · {duration_s:g} s")
    # The moov atom first (faststart) so a player can start from a range request; no
    # creation time and bit-exact muxing, so the same request gives the same bytes.
    with av.open(
        str(path),
        mode="w",
        format="mp4",
        options={"movflags": "+faststart", "fflags": "+bitexact"},
    ) as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, FPS)
        stream.codec_context.options = {"preset": "veryfast", "crf": "30", "threads": "1"}
        stream.codec_context.flags |= av.codec.context.Flags.bitexact
        for i in range(frames):
            t = i / (frames - 1) if frames > 1 else 0.0
            frame = Image.blend(start, end, t) if end is not start else start.copy()
            frame.paste(overlay, (0, 0), overlay)
            _marker(frame, t)
            video_frame = av.VideoFrame.from_image(frame)
            video_frame.pts = i
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode(None))


def _text_layer(size: tuple[int, int], prompt: str, caption: str) -> Image.Image:
    """SANDBOX, the caption and the prompt, drawn once on a transparent layer."""
    width, height = size
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    unit = max(8, min(width, height) // 12)
    big = ImageFont.load_default(size=unit * 2)
    small = ImageFont.load_default(size=max(8, unit // 2))
    white, black = (255, 255, 255, 255), (0, 0, 0, 255)
    draw.text((unit, unit // 2), "SANDBOX", font=big, fill=white, stroke_width=2, stroke_fill=black)
    y = unit // 2 + unit * 2.3
    draw.text((unit, y), caption, font=small, fill=white, stroke_width=1, stroke_fill=black)
    for line in textwrap.wrap(prompt, max(20, int(width / (unit * 0.3))))[:4]:
        y += unit * 0.7
        draw.text((unit, y), line, font=small, fill=white, stroke_width=1, stroke_fill=black)
    return layer


def _marker(frame: Image.Image, t: float) -> None:
    """A disc crossing the bottom of the frame and bouncing: visibly a video."""
    width, height = frame.size
    radius = max(3, min(width, height) // 16)
    x = radius + (width - 2 * radius) * t
    y = height - 2 * radius - abs(math.sin(t * math.pi * 4)) * height / 4
    ImageDraw.Draw(frame).ellipse(
        (x - radius, y - radius, x + radius, y + radius),
        fill=(255, 255, 255),
        outline=(0, 0, 0),
        width=2,
    )
