"""Look at video files without trusting what anyone says about them: the container from
its magic bytes, then size and duration from PyAV (FFmpeg) with only that demuxer."""

import io
from dataclasses import dataclass
from pathlib import Path

import av
import av.error
from PIL import Image

MAX_PIXELS = 4096 * 4096
"""Above this per frame, a result is refused from its header alone."""
MAX_DURATION_S = 600.0
HEAD_BYTES = 64
POSTER_QUALITY = 85
CONTAINERS = {
    # format: (the FFmpeg demuxer allowed to open it, Content-Type, extension)
    "mp4": ("mp4", "video/mp4", "mp4"),
    "mov": ("mov", "video/quicktime", "mov"),
    "webm": ("matroska", "video/webm", "webm"),
}
EBML = b"\x1a\x45\xdf\xa3"


class NotAVideo(ValueError):
    """The bytes are not a video of an accepted container"""


@dataclass(frozen=True)
class VideoInfo:
    format: str
    width: int
    height: int
    duration_s: float
    codec: str

    @property
    def content_type(self) -> str:
        return CONTAINERS[self.format][1]

    @property
    def extension(self) -> str:
        return CONTAINERS[self.format][2]


def sniff_container(head: bytes) -> str | None:
    """mp4 or mov (an ISO BMFF `ftyp` box, QuickTime's brand `qt  `), webm (EBML), or None."""
    if head[4:8] == b"ftyp":
        return "mov" if head[8:12] == b"qt  " else "mp4"
    if head.startswith(EBML):
        return "webm"
    return None


def probe_video(path: Path) -> VideoInfo:
    """Container, frame size and duration, or NotAVideo saying what is wrong."""
    with path.open("rb") as f:
        fmt = sniff_container(f.read(HEAD_BYTES))
    if fmt is None:
        raise NotAVideo("not a video (MP4, MOV or WebM expected)")
    try:
        with av.open(str(path), format=CONTAINERS[fmt][0]) as container:
            if not container.streams.video:
                raise NotAVideo(f"a {fmt.upper()} file without a video stream")
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            codec = stream.codec_context.name
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / av.time_base
            else:
                duration = 0.0
    except av.error.FFmpegError as exc:
        raise NotAVideo(f"not a readable {fmt.upper()} video") from exc
    if width <= 0 or height <= 0:
        raise NotAVideo(f"a {fmt.upper()} video without a frame size")
    if width * height > MAX_PIXELS:
        raise NotAVideo(f"too many pixels per frame ({width}x{height}; at most {MAX_PIXELS})")
    if not 0 < duration <= MAX_DURATION_S:
        raise NotAVideo(f"duration out of range ({duration:g} s; at most {MAX_DURATION_S:g})")
    return VideoInfo(fmt, width, height, round(duration, 3), codec)


def poster(path: Path, info: VideoInfo) -> bytes:
    """The first frame as a JPEG (what a player shows before it starts)."""
    try:
        with av.open(str(path), format=CONTAINERS[info.format][0]) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            frame = next(container.decode(stream), None)
            image: Image.Image | None = frame.to_image() if frame is not None else None
    except av.error.FFmpegError as exc:
        raise NotAVideo(
            f"the first frame of the {info.format.upper()} video is unreadable"
        ) from exc
    if image is None:
        raise NotAVideo(f"a {info.format.upper()} video without a single frame")
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=POSTER_QUALITY)
    return out.getvalue()
