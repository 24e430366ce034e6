"""Video results probed by their own bytes: container, size, duration, and the poster."""

import io
import re
from fractions import Fraction
from pathlib import Path

import av
import pytest
from PIL import Image

from mediagate.media.storage import sniffed_type, valid_key
from mediagate.media.videos import NotAVideo, poster, probe_video, sniff_container
from mediagate.providers.sandbox_video import write_video


def encode(path: Path, *, fmt: str, codec: str, size: tuple[int, int], frames: int) -> Path:
    """A real clip of `frames` frames at 10 fps, each a flat colour."""
    with av.open(str(path), mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, 10)
        for i in range(frames):
            frame = av.VideoFrame.from_image(Image.new("RGB", size, (200, 20 * (i % 10), 40)))
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.mark.parametrize(
    ("fmt", "codec", "name", "container", "content_type"),
    [
        ("mp4", "libx264", "a.mp4", "mp4", "video/mp4"),
        ("mov", "libx264", "a.mov", "mov", "video/quicktime"),
        ("webm", "libvpx-vp9", "a.webm", "webm", "video/webm"),
    ],
)
def test_each_container_is_probed_for_size_and_duration(
    tmp_path: Path, fmt: str, codec: str, name: str, container: str, content_type: str
) -> None:
    path = encode(tmp_path / name, fmt=fmt, codec=codec, size=(320, 180), frames=25)
    info = probe_video(path)
    assert (info.format, info.width, info.height) == (container, 320, 180)
    assert info.duration_s == pytest.approx(2.5, abs=0.1)
    assert info.content_type == content_type and info.extension == name.split(".")[1]
    head = path.read_bytes()[:12]
    assert sniff_container(head) == container and sniffed_type(head) == content_type
    assert valid_key(f"{'k' * 20}.{info.extension}")


def test_the_poster_is_the_first_frame_as_a_jpeg(tmp_path: Path) -> None:
    path = encode(tmp_path / "a.mp4", fmt="mp4", codec="libx264", size=(320, 180), frames=10)
    data = poster(path, probe_video(path))
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG" and image.size == (320, 180)
        red, green, _ = image.convert("RGB").getpixel((160, 90))  # type: ignore[misc]
        assert red > 170 and green < 30  # frame 0's colour, (200, 0, 40)


def garbage_with_an_ftyp_box() -> bytes:
    return b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 500


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "not a video (MP4, MOV or WebM expected)"),
        (b"", "not a video"),
        (b"<html><body>nope</body></html>", "not a video"),
        (garbage_with_an_ftyp_box(), "MP4"),
        (b"\x1a\x45\xdf\xa3" + b"\x00" * 100, "WEBM"),
    ],
)
def test_what_is_not_a_video_is_refused(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "result"
    path.write_bytes(data)
    with pytest.raises(NotAVideo, match=re.escape(message)):
        probe_video(path)


def test_a_truncated_mp4_is_refused_or_has_no_frame(tmp_path: Path) -> None:
    whole = tmp_path / "whole.mp4"
    write_video(whole, prompt="x", aspect_ratio="16:9", resolution="480p", duration_s=2)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[:300])  # the ftyp box and part of the index
    with pytest.raises(NotAVideo):
        poster(cut, probe_video(cut))
