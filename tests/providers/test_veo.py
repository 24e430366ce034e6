"""Veo 3.1 Fast served by fal through its data file alone: the bodies fal documents
(duration as "4s", the first and last frame as first_frame_url / last_frame_url), and the
per-second charge by resolution and sound."""

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


def sent_to(state: FakeState, prompt: str) -> dict[str, Any]:
    return next(b for b in reversed(state.bodies) if b.get("prompt") == prompt)


async def test_text_to_video_without_sound_is_sent_and_priced_as_documented(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory
) -> None:
    prompt = "a veo lighthouse"
    body = {
        "model": "veo-3.1-fast",
        "prompt": prompt,
        "duration": 6,
        "resolution": "1080P",
        "aspect_ratio": "9:16",
        "generate_audio": False,
        "negative_prompt": "people",
        "seed": 11,
    }
    async with live_gateway(make_settings, **provider_settings(fakes, ["fal"])) as app:
        task, kinds = await run_task(app, keys, body, route=VIDEOS)
    assert task["status"] == "completed", task["error"]
    assert kinds == CHARGED and task["credits"] == 60  # 10 credits a second without sound
    assert sent_to(fakes["fal"], prompt) == {
        "endpoint": "fal-ai/veo3.1/fast",
        "prompt": prompt,
        "aspect_ratio": "9:16",
        "duration": "6s",
        "resolution": "1080p",
        "generate_audio": False,
        "negative_prompt": "people",
        "seed": 11,
    }
    [video] = task["output"]["videos"]
    assert video["content_type"] == "video/mp4"
    assert video["duration_s"] == pytest.approx(2, abs=0.1)  # the fake's one clip


async def test_image_to_video_sends_the_first_frame_and_the_resolved_ratio(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory, images: Any
) -> None:
    prompt = "a veo portrait"
    first = images.url("/img/600x800.png")
    body = {
        "model": "veo-3.1-fast",
        "type": "image-to-video",
        "prompt": prompt,
        "images": [first],
        "duration": 4,
    }
    async with live_gateway(make_settings, **provider_settings(fakes, ["fal"])) as app:
        task, kinds = await run_task(app, keys, body, route=VIDEOS)
    assert task["status"] == "completed", task["error"]
    assert kinds == CHARGED and task["credits"] == 60  # 720p with sound: 15 a second
    sent = sent_to(fakes["fal"], prompt)
    assert sent["endpoint"] == "fal-ai/veo3.1/fast/image-to-video"
    assert sent["image_url"] == first
    assert sent["aspect_ratio"] == "9:16"  # auto, resolved from the 600x800 reference
    assert (sent["duration"], sent["generate_audio"]) == ("4s", True)


async def test_first_last_frame_sends_both_frames(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory, images: Any, ref: str
) -> None:
    prompt = "a veo transition"
    last = images.url("/img/600x800.png")
    body = {
        "model": "veo-3.1-fast",
        "type": "first-last-frame",
        "prompt": prompt,
        "images": [ref, last],
        "duration": 4,
        "generate_audio": False,
    }
    async with live_gateway(make_settings, **provider_settings(fakes, ["fal"])) as app:
        task, kinds = await run_task(app, keys, body, route=VIDEOS)
    assert task["status"] == "completed", task["error"]
    assert kinds == CHARGED and task["credits"] == 40
    sent = sent_to(fakes["fal"], prompt)
    assert sent["endpoint"] == "fal-ai/veo3.1/fast/first-last-frame-to-video"
    assert (sent["first_frame_url"], sent["last_frame_url"]) == (ref, last)
    assert sent["aspect_ratio"] == "16:9"  # auto, nearest to the 640x480 first frame
