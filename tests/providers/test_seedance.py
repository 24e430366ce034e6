"""Seedance 1.0 Pro served by fal and WaveSpeed through its data file alone: the bodies
they document (duration as a string at fal, an integer at WaveSpeed; the first frame as
image_url / image, the last as last_image), WaveSpeed's model id by resolution, the video
mirrored, probed and postered, the per-second charge."""

from typing import Any

import httpx2
import pytest

from tests.factories import KeyFactory
from tests.providers.fakes import FakeState
from tests.providers.test_providers import (
    CHARGED,
    live_gateway,
    provider_settings,
    run_task,
)

VIDEOS = "/api/v1/videos/generations"


async def submit_only(app: Any, keys: KeyFactory, body: dict[str, Any]) -> httpx2.Response:
    key = await keys(mode="live", credits=100, account="live-seedance")
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://gw"
    ) as client:
        return await client.post(VIDEOS, json=body, headers=key.headers)


async def test_text_to_video_is_sent_to_fal_as_documented(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory
) -> None:
    state = fakes["fal"]
    body = {
        "model": "seedance-1-pro",
        "prompt": "a seedance race car",
        "duration": 4,
        "resolution": "720P",
        "camera_fixed": True,
        "seed": 7,
    }
    async with live_gateway(make_settings, **provider_settings(fakes, ["fal"])) as app:
        task, kinds = await run_task(app, keys, body, route=VIDEOS)
    assert task["status"] == "completed", task["error"]
    assert kinds == CHARGED and task["credits"] == 20  # 5 credits a second at 720p, 4 s
    sent = next(b for b in reversed(state.bodies) if b.get("prompt") == "a seedance race car")
    assert sent == {
        "endpoint": "fal-ai/bytedance/seedance/v1/pro/text-to-video",
        "prompt": "a seedance race car",
        "aspect_ratio": "16:9",
        "resolution": "720p",
        "duration": "4",
        "camera_fixed": True,
        "seed": 7,
        "enable_safety_checker": True,
    }
    [video] = task["output"]["videos"]
    # The fake serves one 2 s 16:9 480p sandbox clip: what was stored is what fal returned.
    assert (video["width"], video["height"], video["content_type"]) == (640, 360, "video/mp4")
    assert video["duration_s"] == pytest.approx(2, abs=0.1)
    assert video["poster"]["url"].endswith(".jpg") and video["poster"]["width"] == 640


async def test_image_to_video_sends_the_first_frame_as_image_url(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory, ref: str
) -> None:
    state = fakes["fal"]
    body = {
        "model": "seedance-1-pro",
        "type": "image-to-video",
        "prompt": "a seedance skier",
        "images": [ref],
    }
    async with live_gateway(make_settings, **provider_settings(fakes, ["fal"])) as app:
        task, kinds = await run_task(app, keys, body, route=VIDEOS)
    assert task["status"] == "completed", task["error"]
    assert kinds == CHARGED and task["credits"] == 60  # 1080p, 5 s: the defaults
    sent = next(b for b in reversed(state.bodies) if b.get("prompt") == "a seedance skier")
    assert sent["endpoint"] == "fal-ai/bytedance/seedance/v1/pro/image-to-video"
    assert sent["image_url"] == ref and sent["duration"] == "5"
    assert sent["aspect_ratio"] == "4:3"  # auto, resolved from the 640x480 reference
    assert sent["camera_fixed"] is False and "seed" not in sent


async def test_wavespeed_names_the_model_id_by_resolution(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory
) -> None:
    state = fakes["wavespeed"]
    prompt = "a seedance wavespeed glider"
    body = {
        "model": "seedance-1-pro",
        "prompt": prompt,
        "duration": 3,
        "resolution": "480p",
        "aspect_ratio": "21:9",
        "seed": 5,
    }
    async with live_gateway(make_settings, **provider_settings(fakes, ["wavespeed"])) as app:
        task, kinds = await run_task(app, keys, body, route=VIDEOS)
    assert task["status"] == "completed", task["error"]
    assert kinds == CHARGED and task["credits"] == 6  # 2 credits a second at 480p
    sent = next(b for b in reversed(state.bodies) if b.get("prompt") == prompt)
    assert sent == {
        "model": "bytedance/seedance-v1-pro-t2v-480p",
        "prompt": prompt,
        "aspect_ratio": "21:9",
        "duration": 3,  # an integer at WaveSpeed
        "camera_fixed": False,
        "seed": 5,
    }
    [video] = task["output"]["videos"]
    assert video["content_type"] == "video/mp4"
    assert video["duration_s"] == pytest.approx(2, abs=0.1)  # the fake's one clip


async def test_first_last_frame_goes_to_wavespeed_with_last_image(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory, images: Any, ref: str
) -> None:
    state = fakes["wavespeed"]
    prompt = "a seedance first and last frame"
    last = images.url("/img/600x800.png")
    body = {
        "model": "seedance-1-pro",
        "type": "first-last-frame",
        "prompt": prompt,
        "images": [ref, last],
        "resolution": "720p",
        "duration": 4,
    }
    both = provider_settings(fakes, ["fal", "wavespeed"])
    async with live_gateway(make_settings, **both) as app:
        task, kinds = await run_task(app, keys, body, route=VIDEOS)
    assert task["status"] == "completed", task["error"]
    assert kinds == CHARGED and task["credits"] == 20
    sent = next(b for b in reversed(state.bodies) if b.get("prompt") == prompt)
    assert sent["model"] == "bytedance/seedance-v1-pro-i2v-720p"
    assert (sent["image"], sent["last_image"], sent["duration"]) == (ref, last, 4)
    assert "aspect_ratio" not in sent
    assert all(b.get("prompt") != prompt for b in fakes["fal"].bodies)


async def test_image_to_video_with_a_chosen_ratio_stays_on_fal(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory, ref: str
) -> None:
    prompt = "a seedance chosen ratio"
    body = {
        "model": "seedance-1-pro",
        "type": "image-to-video",
        "prompt": prompt,
        "images": [ref],
        "aspect_ratio": "9:16",
        "resolution": "480p",
    }
    async with live_gateway(make_settings, **provider_settings(fakes, ["wavespeed"])) as app:
        answer = await submit_only(app, keys, body)
    assert answer.status_code == 400
    assert "wavespeed cannot honour aspect_ratio" in answer.json()["message"]
