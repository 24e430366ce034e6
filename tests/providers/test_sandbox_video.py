"""The sandbox's MP4s: playable H.264, exactly as long as asked, at the requested ratio,
the same bytes for the same request, first (and last) frame from the references."""

import io
from pathlib import Path

import av
import pytest
from PIL import Image, ImageChops, ImageStat

from mediagate.media.videos import probe_video
from mediagate.providers.sandbox_video import MAX_LONG_SIDE, render_video, video_size

RED, BLUE = (220, 40, 40), (30, 60, 200)


def frames_of(data: bytes) -> list[Image.Image]:
    with av.open(io.BytesIO(data)) as container:
        return [f.to_image() for f in container.decode(video=0)]


def difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per pixel, 0-255."""
    return float(ImageStat.Stat(ImageChops.difference(a, b.resize(a.size)).convert("L")).mean[0])


@pytest.mark.parametrize("duration_s", [2, 5, 12])
def test_the_clip_is_as_long_as_asked(tmp_path: Path, duration_s: int) -> None:
    path = tmp_path / "v.mp4"
    path.write_bytes(
        render_video(prompt="p", aspect_ratio="16:9", resolution="480p", duration_s=duration_s)
    )
    info = probe_video(path)
    assert abs(info.duration_s - duration_s) <= 0.1
    assert info.codec == "h264" and info.format == "mp4"
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"
    head = path.read_bytes()[:64]
    assert head.index(b"moov") < 64  # faststart: playable before the whole file is in


@pytest.mark.parametrize(
    ("aspect_ratio", "resolution", "size"),
    [
        ("16:9", "480p", (640, 360)),
        ("9:16", "1080p", (360, 640)),
        ("1:1", "480p", (480, 480)),
        ("21:9", "720p", (640, 274)),
        ("4:3", "480p", (640, 480)),
    ],
)
def test_the_frame_keeps_the_ratio_with_the_long_side_capped(
    aspect_ratio: str, resolution: str, size: tuple[int, int]
) -> None:
    assert video_size(aspect_ratio, resolution) == size
    width, height = size
    w, h = (int(x) for x in aspect_ratio.split(":"))
    assert max(size) <= MAX_LONG_SIDE and abs(width / height - w / h) < 0.02


def test_the_same_request_gives_the_same_bytes_and_another_prompt_others() -> None:
    params = {"aspect_ratio": "16:9", "resolution": "720p", "duration_s": 3.0}
    one = render_video(prompt="a fox", **params)
    assert render_video(prompt="a fox", **params) == one
    assert render_video(prompt="a wolf", **params) != one


def test_it_moves() -> None:
    frames = frames_of(
        render_video(prompt="p", aspect_ratio="1:1", resolution="480p", duration_s=2)
    )
    assert len(frames) == 20
    assert difference(frames[0], frames[10]) > 0.5  # the marker travelled


def test_the_references_are_the_first_and_last_frames() -> None:
    first, last = Image.new("RGB", (900, 600), RED), Image.new("RGB", (300, 300), BLUE)
    frames = frames_of(
        render_video(
            prompt="p", aspect_ratio="16:9", resolution="480p", duration_s=2, first=first, last=last
        )
    )
    assert difference(frames[0], first) < 20  # the SANDBOX text and the marker cover a little
    assert difference(frames[-1], last) < 20
    assert difference(frames[0], last) > 80
