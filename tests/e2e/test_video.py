"""Video generation through a real `mediagate serve` with a test key: text-to-video and
image-to-video submitted, polled, the MP4 downloaded by HTTP range as a player fetches it
(the whole file, then a seek to the middle) and probed (duration, aspect), its poster
checked, and the exact per-second charge in the ledger and the account."""

import io
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from PIL import Image, ImageChops, ImageStat

from mediagate.media.videos import poster, probe_video
from tests.e2e.procs import (
    create_key,
    credits,
    environment,
    free_port,
    poll,
    process,
    query,
    wait_for_http,
)
from tests.servers import ImageServer

pytestmark = pytest.mark.e2e

VIDEOS = "/api/v1/videos/generations"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, images: ImageServer, module_database_url: str | None
) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("e2e-video") / "data"
    env = environment(
        data,
        module_database_url,
        sandbox_latency_s=0.2,
        fetch_allow_private_hosts=json.dumps(["127.0.0.1"]),
        fetch_ports=json.dumps([80, 443, images.server_address[1]]),
    )
    port = free_port()
    log = data.parent / "serve.log"
    with process(env, "serve", "--port", str(port), log=log) as proc:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(base, proc, log)
        yield {"base": base, "env": env}


def submit_video(base: str, key: str, body: dict[str, Any]) -> str:
    response = httpx2.post(f"{base}{VIDEOS}", json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["status"] == "IN_PROGRESS"
    return str(response.json()["data"]["task_id"])


def download(url: str, path: Path) -> Path:
    """Fetch the video as a player does, by range: `bytes=0-` for the whole file, then a
    range from the middle (a seek), each a 206 with its Content-Range; the file saved."""
    whole = httpx2.get(url, headers={"Range": "bytes=0-"})
    assert whole.status_code == 206, whole.status_code
    size = len(whole.content)
    assert size > 1000
    assert whole.headers["content-range"] == f"bytes 0-{size - 1}/{size}"
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] == "video/mp4"
    start, end = size // 2, size // 2 + 999
    seek = httpx2.get(url, headers={"Range": f"bytes={start}-{end}"})
    assert seek.status_code == 206, seek.status_code
    assert seek.headers["content-range"] == f"bytes {start}-{end}/{size}"
    assert seek.headers["accept-ranges"] == "bytes"
    assert int(seek.headers["content-length"]) == 1000
    assert seek.content == whole.content[start : end + 1]
    path.write_bytes(whole.content)
    return path


def check_poster(video: dict[str, Any], size: tuple[int, int]) -> Image.Image:
    """The poster the task names: a JPEG of the video's frame size; the image."""
    still = httpx2.get(video["poster"]["url"])
    assert still.status_code == 200 and still.headers["content-type"] == "image/jpeg"
    assert (video["poster"]["width"], video["poster"]["height"]) == size
    image = Image.open(io.BytesIO(still.content))
    assert image.format == "JPEG" and image.size == size
    return image.convert("RGB")


def aspect(width: int, height: int) -> str:
    divisor = math.gcd(width, height)
    return f"{width // divisor}:{height // divisor}"


def ledger_of(env: dict[str, str], task_id: str) -> list[tuple[str, int]]:
    rows = query(
        env, "SELECT kind, amount FROM ledger_transfers WHERE task_id = ? ORDER BY id", task_id
    )
    return [(str(kind), int(amount)) for kind, amount in rows]


@pytest.mark.parametrize(
    ("aspect_ratio", "resolution", "duration", "size", "charge"),
    [("16:9", "1080p", 5, (640, 360), 60), ("9:16", "480p", 3, (360, 640), 6)],
)
def test_text_to_video_gives_a_playable_mp4_of_the_asked_length_and_charges_exactly(
    server: dict[str, Any],
    tmp_path: Path,
    aspect_ratio: str,
    resolution: str,
    duration: int,
    size: tuple[int, int],
    charge: int,
) -> None:
    base, env = server["base"], server["env"]
    key = create_key(env, account=f"video-t2v-{resolution}", credits=100)
    task_id = submit_video(
        base,
        key,
        {
            "model": "seedance-1-pro",
            "prompt": "A fox runs across a snowy field",
            "aspect_ratio": aspect_ratio,
            "resolution": resolution,
            "duration": duration,
            "camera_fixed": True,
        },
    )
    task = poll(base, key, task_id)
    assert task["status"] == "completed", task
    assert task["credits"] == charge and task["error"] is None
    [video] = task["output"]["videos"]
    assert video["url"].startswith(base + "/files/") and video["content_type"] == "video/mp4"
    assert (video["width"], video["height"]) == size
    path = download(video["url"], tmp_path / "t2v.mp4")
    info = probe_video(path)
    assert (info.width, info.height, info.codec) == (*size, "h264")
    assert aspect(info.width, info.height) == aspect_ratio
    assert abs(info.duration_s - duration) <= 0.1 and video["duration_s"] == info.duration_s
    check_poster(video, size)
    assert ledger_of(env, task_id) == [("hold", charge), ("capture", charge)]
    assert credits(base, key)["available"] == 100 - charge


def test_image_to_video_opens_on_the_reference(
    server: dict[str, Any], images: ImageServer, tmp_path: Path
) -> None:
    base, env = server["base"], server["env"]
    key = create_key(env, account="video-i2v", credits=100)
    reference = images.url("/img/900x900.png")  # a flat (200, 80, 40) square
    task_id = submit_video(
        base,
        key,
        {
            "model": "seedance-1-pro",
            "type": "image-to-video",
            "prompt": "The colour slowly fades",
            "images": [reference],
            "resolution": "720p",
            "duration": 2,
        },
    )
    task = poll(base, key, task_id)
    assert task["status"] == "completed", task
    assert task["credits"] == 10  # 5 credits a second at 720p
    [video] = task["output"]["videos"]
    assert (video["width"], video["height"]) == (640, 640)  # auto: 1:1 from the reference
    path = download(video["url"], tmp_path / "i2v.mp4")
    info = probe_video(path)
    assert (info.width, info.height, aspect(info.width, info.height)) == (640, 640, "1:1")
    assert abs(info.duration_s - 2) <= 0.1 and video["duration_s"] == info.duration_s
    first = Image.open(io.BytesIO(poster(path, info))).convert("RGB")
    assert (
        ImageStat.Stat(ImageChops.difference(first, check_poster(video, (640, 640)))).mean[0] < 8
    )  # the poster served is that first frame (give or take JPEG)
    expected = Image.new("RGB", first.size, (200, 80, 40))
    difference = ImageStat.Stat(ImageChops.difference(first, expected).convert("L")).mean[0]
    assert difference < 20, difference  # the SANDBOX text and the marker cover a little
    assert ledger_of(env, task_id) == [("hold", 10), ("capture", 10)]
    assert credits(base, key)["available"] == 90


def test_a_video_model_on_the_image_route_is_refused_before_any_hold(
    server: dict[str, Any],
) -> None:
    base, env = server["base"], server["env"]
    key = create_key(env, account="video-wrong-route", credits=100)
    response = httpx2.post(
        f"{base}/api/v1/images/generations",
        json={"model": "seedance-1-pro", "prompt": "x"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "model"
    assert VIDEOS in response.json()["message"]
    assert credits(base, key)["available"] == 100
