"""Every video model added as data, through one real `mediagate serve` process: with a
test key (the sandbox renders the MP4: its size, its length, its first and last frame)
and with a live key through the provider fakes on loopback (Kling's own API, fal, WaveSpeed). Each
charge is checked to the credit."""

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx2
import pytest
from PIL import Image, ImageChops, ImageStat

from mediagate.media.videos import probe_video
from tests.e2e.procs import (
    create_key,
    environment,
    free_port,
    process,
    run_model,
    wait_for_http,
)
from tests.providers.fakes import FakeState, fal_app, kling_app, serve, wavespeed_app
from tests.servers import ImageServer

pytestmark = pytest.mark.e2e

KLING_SECRET = "kling-e2e-secret-0123456789abcdefghij"
FIRST, LAST = (200, 80, 40), (30, 60, 200)
"""The image server's flat colours: its default, and the one asked for by ?rgb=."""
FIRST_REF = "/img/640x360.png"
LAST_REF = "/img/640x360.png?rgb=30,60,200"

# (model, body, provider, upstream endpoint, sandbox frame size, duration s, credits)
CASES: list[tuple[str, dict[str, Any], str, str, tuple[int, int], int, int]] = [
    (
        "kling-v2.5-turbo",
        {"aspect_ratio": "9:16", "resolution": "720p", "duration": 10, "negative_prompt": "blur"},
        "kling",
        "/v1/videos/text2video",
        (360, 640),
        10,
        50,
    ),
    (
        "kling-v2.5-turbo",
        {"type": "image-to-video", "images": [FIRST_REF]},
        "kling",
        "/v1/videos/image2video",
        (640, 360),  # auto: 16:9 from the reference
        5,
        35,
    ),
    (
        "kling-v2.5-turbo",
        {"type": "first-last-frame", "images": [FIRST_REF, LAST_REF]},
        "kling",
        "/v1/videos/image2video",
        (640, 360),
        5,
        35,
    ),
    (
        "veo-3.1-fast",
        {"duration": 4, "resolution": "1080p", "generate_audio": False, "seed": 3},
        "fal",
        "fal-ai/veo3.1/fast",
        (640, 360),
        4,
        40,
    ),
    (
        "veo-3.1-fast",
        {"type": "image-to-video", "images": [FIRST_REF], "duration": 4},
        "fal",
        "fal-ai/veo3.1/fast/image-to-video",
        (640, 360),
        4,
        60,
    ),
    (
        "veo-3.1-fast",
        {
            "type": "first-last-frame",
            "images": [FIRST_REF, LAST_REF],
            "duration": 6,
            "aspect_ratio": "9:16",
            "generate_audio": False,
        },
        "fal",
        "fal-ai/veo3.1/fast/first-last-frame-to-video",
        (360, 640),
        6,
        60,
    ),
    (
        "seedance-1-pro",
        {"type": "first-last-frame", "images": [FIRST_REF, LAST_REF], "resolution": "480p"},
        "wavespeed",
        "bytedance/seedance-v1-pro-i2v-480p",
        (640, 360),
        5,
        10,
    ),
]
IDS = [f"{model}-{body.get('type', 'text-to-video')}" for model, body, *_ in CASES]


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeState]]:
    states = {
        "fal": FakeState("fal-key"),
        "kling": FakeState("kling-access"),
        "wavespeed": FakeState("ws-key"),
    }
    with (
        serve(fal_app(states["fal"]), states["fal"]),
        serve(kling_app(states["kling"], KLING_SECRET), states["kling"]),
        serve(wavespeed_app(states["wavespeed"]), states["wavespeed"]),
    ):
        yield states


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    module_database_url: str | None,
    fakes: dict[str, FakeState],
    images: ImageServer,
) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("video-models-e2e") / "data"
    port = free_port()
    fake_ports = [int(f.base.rsplit(":", 1)[1]) for f in fakes.values()]
    env = environment(
        data,
        module_database_url,
        sandbox_latency_s=0.2,
        runner_poll_interval_s=0.1,
        fal_key=fakes["fal"].key,
        fal_base_url=fakes["fal"].base,
        kling_access_key=fakes["kling"].key,
        kling_secret_key=KLING_SECRET,
        kling_base_url=fakes["kling"].base,
        wavespeed_api_key=fakes["wavespeed"].key,
        wavespeed_base_url=fakes["wavespeed"].base,
        fetch_allow_private_hosts=json.dumps(["127.0.0.1"]),
        fetch_ports=json.dumps([80, 443, *fake_ports, images.server_address[1]]),
    )
    log = data.parent / "serve.log"
    with process(env, "serve", "--port", str(port), log=log) as proc:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(base, proc, log)
        yield {"base": base, "env": env}


def frames_of(path: Path) -> list[Image.Image]:
    with av.open(str(path)) as container:
        return [f.to_image() for f in container.decode(video=0)]


def distance(frame: Image.Image, color: tuple[int, int, int]) -> float:
    """Mean absolute difference per pixel (0-255) from a flat colour."""
    flat = Image.new("RGB", frame.size, color)
    return float(ImageStat.Stat(ImageChops.difference(frame, flat).convert("L")).mean[0])


@pytest.mark.parametrize(
    ("model", "body", "provider", "endpoint", "size", "duration", "price"), CASES, ids=IDS
)
def test_test_key_gets_an_mp4_of_the_asked_shape_and_length_and_pays_the_price(
    server: dict[str, Any],
    images: ImageServer,
    tmp_path: Path,
    model: str,
    body: dict[str, Any],
    provider: str,
    endpoint: str,
    size: tuple[int, int],
    duration: int,
    price: int,
) -> None:
    key = create_key(server["env"], account=f"sbx-{endpoint.replace('/', '.')}", credits=200)
    task, charged = run_model(
        server,
        images,
        key,
        model,
        body,
        f"sandbox {model}",
        endpoint="videos/generations",
        timeout=90,
    )
    assert task["status"] == "completed", task
    assert task["credits"] == price and charged == price
    [video] = task["output"]["videos"]
    assert (video["width"], video["height"]) == size
    response = httpx2.get(video["url"], timeout=30)
    assert response.status_code == 200
    path = tmp_path / "video.mp4"
    path.write_bytes(response.content)
    info = probe_video(path)
    assert (info.width, info.height, info.codec) == (*size, "h264")
    assert abs(info.duration_s - duration) <= 0.1
    frames = frames_of(path)
    if "images" in body:
        assert distance(frames[0], FIRST) < 25  # the SANDBOX text and the marker cover a little
    if len(body.get("images", [])) == 2:
        assert distance(frames[-1], LAST) < 25  # the tail image closes the video
        assert distance(frames[0], LAST) > 80
    poster = httpx2.get(video["poster"]["url"], timeout=30)
    with Image.open(io.BytesIO(poster.content)) as still:
        assert still.format == "JPEG" and still.size == size


@pytest.mark.parametrize(
    ("model", "body", "provider", "endpoint", "size", "duration", "price"), CASES, ids=IDS
)
def test_live_key_goes_to_the_declared_provider_endpoint(
    server: dict[str, Any],
    images: ImageServer,
    fakes: dict[str, FakeState],
    model: str,
    body: dict[str, Any],
    provider: str,
    endpoint: str,
    size: tuple[int, int],
    duration: int,
    price: int,
) -> None:
    key = create_key(
        server["env"], account=f"live-{endpoint.replace('/', '.')}", credits=200, test=False
    )
    prompt = f"live {model} {body.get('type', 'text-to-video')}"
    task, charged = run_model(
        server, images, key, model, body, prompt, endpoint="videos/generations", timeout=90
    )
    assert task["status"] == "completed", task
    assert task["credits"] == price and charged == price
    [video] = task["output"]["videos"]
    assert video["content_type"] == "video/mp4"
    assert video["duration_s"] == pytest.approx(2, abs=0.1)  # the fakes serve one 2 s clip
    sent = next(b for b in fakes[provider].bodies if b.get("prompt") == prompt)
    assert sent.get("path", sent.get("endpoint", sent.get("model"))) == endpoint
    refs = [images.url(p) for p in body.get("images", [])]
    named = {
        "kling": ("image", "image_tail"),
        "wavespeed": ("image", "last_image"),
        "fal": ("image_url", "first_frame_url", "last_frame_url"),
    }[provider]
    assert [sent[f] for f in named if f in sent] == refs
