"""Seedance 1.0 Pro served by fal through its data file alone: the bodies fal documents
(duration as a string, the first frame as image_url), the video mirrored, probed and
postered, the per-second charge."""

from typing import Any

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
