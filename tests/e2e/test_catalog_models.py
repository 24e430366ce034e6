"""Every model added as data, through one real `mediagate serve` process: with a test key
(the sandbox draws the outputs), with a live key through the fal fake on loopback, and
with fal down through the WaveSpeed fake (each model's second route). Each task is
downloaded, counted and measured, and the charge checked to the credit."""

import io
import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from PIL import Image

from tests.e2e.procs import (
    create_key,
    environment,
    free_port,
    process,
    run_model,
    wait_for_http,
)
from tests.providers.fakes import FakeState, fal_app, serve, wavespeed_app
from tests.servers import ImageServer

pytestmark = pytest.mark.e2e

REF = "/img/600x800.png"
"""A reference image the session's image server serves (tests/servers.py)."""

# (model, body, fal endpoint, outputs, sandbox pixel size, credits). Sizes: the model's
# [sandbox] table, or about 1 MP (1k) / 4 MP (2k) at the ratio, sides multiples of 16.
CASES: list[tuple[str, dict[str, Any], str, int, tuple[int, int], int]] = [
    (
        "seedream-4",
        {"type": "text-to-image", "size": "2304x1728", "num_images": 2, "seed": 7},
        "fal-ai/bytedance/seedream/v4/text-to-image",
        2,
        (2304, 1728),
        6,
    ),
    (
        "seedream-4",
        {"type": "image-to-image", "size": "1024x1024", "images": [REF]},
        "fal-ai/bytedance/seedream/v4/edit",
        1,
        (1024, 1024),
        3,
    ),
    (
        "nano-banana",
        {"aspect_ratio": "16:9", "num_images": 2, "output_format": "jpeg"},
        "fal-ai/nano-banana",
        2,
        (1360, 768),
        8,
    ),
    (
        "nano-banana",
        {"type": "image-to-image", "images": [REF, REF]},
        "fal-ai/nano-banana/edit",
        1,
        (1024, 1024),
        4,
    ),
    (
        "flux-kontext-pro",
        {"images": [REF], "aspect_ratio": "3:2", "safety_tolerance": "3"},
        "fal-ai/flux-pro/kontext",
        1,
        (1248, 832),
        4,
    ),
    (
        "flux-kontext-pro",
        {"type": "text-to-image", "aspect_ratio": "9:21", "num_images": 3},
        "fal-ai/flux-pro/kontext/text-to-image",
        3,
        (672, 1568),
        12,
    ),
    (
        "imagen-4",
        {"aspect_ratio": "4:3", "resolution": "2K", "num_images": 2},
        "fal-ai/imagen4/preview",
        2,
        (2368, 1776),
        12,
    ),
    (
        "qwen-image",
        {"aspect_ratio": "16:9", "num_images": 2, "negative_prompt": "blurry"},
        "fal-ai/qwen-image",
        2,
        (1024, 576),
        4,
    ),
    (
        "qwen-image",
        {"type": "image-to-image", "aspect_ratio": "9:16", "images": [REF]},
        "fal-ai/qwen-image-edit",
        1,
        (576, 1024),
        3,
    ),
]
IDS = [f"{model}-{body.get('type', 'default')}" for model, body, *_ in CASES]

# (model, body, WaveSpeed model id, outputs, credits): what each model's WaveSpeed route
# can honour (it takes no count, seed or format where WaveSpeed documents none).
WAVESPEED_CASES: list[tuple[str, dict[str, Any], str, int, int]] = [
    ("seedream-4", {"size": "2560x1440"}, "bytedance/seedream-v4", 1, 3),
    (
        "seedream-4",
        {"type": "image-to-image", "images": [REF, REF]},
        "bytedance/seedream-v4/edit",
        1,
        3,
    ),
    ("nano-banana", {"aspect_ratio": "21:9"}, "google/nano-banana/text-to-image", 1, 4),
    ("nano-banana", {"type": "image-to-image", "images": [REF]}, "google/nano-banana/edit", 1, 4),
    ("flux-kontext-pro", {"images": [REF]}, "wavespeed-ai/flux-kontext-pro", 1, 4),
    (
        "flux-kontext-pro",
        {"type": "text-to-image", "num_images": 2, "seed": 1},
        "wavespeed-ai/flux-kontext-pro/text-to-image",
        2,
        8,
    ),
    ("imagen-4", {"aspect_ratio": "3:4", "num_images": 3}, "wavespeed-ai/imagen4", 3, 12),
    ("qwen-image", {"seed": 9}, "wavespeed-ai/qwen-image/text-to-image", 1, 2),
    (
        "qwen-image",
        {"type": "image-to-image", "images": [REF]},
        "wavespeed-ai/qwen-image/edit",
        1,
        3,
    ),
]
WAVESPEED_IDS = [f"{model}-{body.get('type', 'default')}" for model, body, *_ in WAVESPEED_CASES]


@pytest.fixture(scope="module")
def fal() -> Iterator[FakeState]:
    state = FakeState("fal-key")
    with serve(fal_app(state), state):
        yield state


@pytest.fixture(scope="module")
def wavespeed() -> Iterator[FakeState]:
    state = FakeState("ws-key")
    with serve(wavespeed_app(state), state):
        yield state


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    module_database_url: str | None,
    fal: FakeState,
    wavespeed: FakeState,
    images: ImageServer,
) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("catalog-e2e") / "data"
    port = free_port()
    fal_port = int(fal.base.rsplit(":", 1)[1])
    ws_port = int(wavespeed.base.rsplit(":", 1)[1])
    env = environment(
        data,
        module_database_url,
        sandbox_latency_s=0.2,
        runner_poll_interval_s=0.1,
        fal_key=fal.key,
        fal_base_url=fal.base,
        wavespeed_api_key=wavespeed.key,
        wavespeed_base_url=wavespeed.base,
        breaker_threshold=1000,  # fal-down tasks must not open fal's breaker for the others
        fetch_allow_private_hosts=json.dumps(["127.0.0.1"]),
        fetch_ports=json.dumps([80, 443, fal_port, ws_port, images.server_address[1]]),
    )
    log = data.parent / "serve.log"
    with process(env, "serve", "--port", str(port), log=log) as proc:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(base, proc, log)
        yield {"base": base, "env": env}


def downloaded_sizes(task: dict[str, Any], base: str) -> list[tuple[int, int]]:
    sizes = []
    for image in task["output"]["images"]:
        assert image["url"].startswith(base + "/files/")
        response = httpx2.get(image["url"], timeout=30)
        assert response.status_code == 200
        with Image.open(io.BytesIO(response.content)) as decoded:
            sizes.append(decoded.size)
            assert (image["width"], image["height"]) == decoded.size
    return sizes


@pytest.mark.parametrize(("model", "body", "endpoint", "count", "size", "price"), CASES, ids=IDS)
def test_test_key_gets_the_asked_count_and_size_and_pays_the_price(
    server: dict[str, Any],
    images: ImageServer,
    model: str,
    body: dict[str, Any],
    endpoint: str,
    count: int,
    size: tuple[int, int],
    price: int,
) -> None:
    key = create_key(server["env"], account=f"sbx-{endpoint.replace('/', '.')}", credits=100)
    task, charged = run_model(server, images, key, model, body, f"sandbox {model}")
    assert task["status"] == "completed", task
    assert downloaded_sizes(task, server["base"]) == [size] * count
    assert task["credits"] == price and charged == price


@pytest.mark.parametrize(("model", "body", "endpoint", "count", "size", "price"), CASES, ids=IDS)
def test_live_key_goes_to_the_declared_fal_endpoint(
    server: dict[str, Any],
    images: ImageServer,
    fal: FakeState,
    model: str,
    body: dict[str, Any],
    endpoint: str,
    count: int,
    size: tuple[int, int],
    price: int,
) -> None:
    key = create_key(
        server["env"], account=f"live-{endpoint.replace('/', '.')}", credits=100, test=False
    )
    prompt = f"live {model} {endpoint}"
    task, charged = run_model(server, images, key, model, body, prompt)
    assert task["status"] == "completed", task
    assert len(downloaded_sizes(task, server["base"])) == count  # the fake's 640x480 PNGs
    assert task["credits"] == price and charged == price
    sent = next(b for b in fal.bodies if b.get("prompt") == prompt)
    assert sent["endpoint"] == endpoint
    if "images" in body:
        refs = sent.get("image_urls") or [sent["image_url"]]
        assert refs == [images.url(p) for p in body["images"]][: len(refs)]


@pytest.mark.parametrize(
    ("model", "body", "model_id", "count", "price"), WAVESPEED_CASES, ids=WAVESPEED_IDS
)
def test_live_key_with_fal_down_goes_to_the_declared_wavespeed_model(
    server: dict[str, Any],
    images: ImageServer,
    fal: FakeState,
    wavespeed: FakeState,
    model: str,
    body: dict[str, Any],
    model_id: str,
    count: int,
    price: int,
) -> None:
    key = create_key(
        server["env"], account=f"ws-{model_id.replace('/', '.')}", credits=100, test=False
    )
    prompt = f"[fal-down] live {model} {model_id}"
    task, charged = run_model(server, images, key, model, body, prompt)
    assert task["status"] == "completed", task
    assert len(downloaded_sizes(task, server["base"])) == count  # the fake's 640x480 PNGs
    assert task["credits"] == price and charged == price  # charged once
    assert all(b.get("prompt") != prompt for b in fal.bodies)
    [sent] = [b for b in wavespeed.bodies if b.get("prompt") == prompt]  # one upstream job
    assert sent["model"] == model_id
    if "images" in body:
        refs = sent.get("images") or [sent["image"]]
        assert refs == [images.url(p) for p in body["images"]][: len(refs)]
