"""Kling 2.5 Turbo (video) served through its data file alone: on Kling's own API (the
text2video and image2video bodies Kling documents, the last frame as image_tail in pro
mode), failing over to fal, and cfg_scale sent only where it is taken."""

from collections.abc import Iterator
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
BOTH = ["kling", "fal"]


def sent_to(state: FakeState, prompt: str) -> dict[str, Any]:
    return next(b for b in reversed(state.bodies) if b.get("prompt") == prompt)


@pytest.fixture
def kling_down(fakes: dict[str, FakeState]) -> Iterator[None]:
    """Kling answers every create with code 5000 (HTTP 500); fal is unaffected."""
    fakes["kling"].always.add("[fake:5xx]")
    try:
        yield
    finally:
        fakes["kling"].always.discard("[fake:5xx]")


async def test_text_to_video_goes_to_kling_first_as_documented(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory
) -> None:
    prompt = "a kling paper boat"
    body = {
        "model": "kling-v2.5-turbo",
        "prompt": prompt,
        "duration": 10,
        "resolution": "720p",
        "aspect_ratio": "9:16",
        "negative_prompt": "blur",
    }
    async with live_gateway(make_settings, **provider_settings(fakes, BOTH)) as app:
        task, kinds = await run_task(app, keys, body, route=VIDEOS)
    assert task["status"] == "completed", task["error"]
    assert kinds == CHARGED and task["credits"] == 50  # 5 credits a second at 720p, 10 s
    sent = sent_to(fakes["kling"], prompt)
    assert sent.pop("external_task_id") == task["task_id"]
    assert sent == {
        "path": "/v1/videos/text2video",
        "model_name": "kling-v2-5-turbo",
        "prompt": prompt,
        "negative_prompt": "blur",
        "aspect_ratio": "9:16",
        "duration": "10",
        "mode": "std",
    }
    [video] = task["output"]["videos"]
    # The fake serves one 2 s 16:9 sandbox clip: what was stored is what Kling returned.
    assert (video["width"], video["height"], video["content_type"]) == (640, 360, "video/mp4")
    assert video["duration_s"] == pytest.approx(2, abs=0.1)


async def test_image_to_video_sends_the_first_frame_as_image(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory, ref: str
) -> None:
    prompt = "a kling first frame"
    body = {"model": "kling-v2.5-turbo", "type": "image-to-video", "prompt": prompt}
    body["images"] = [ref]
    async with live_gateway(make_settings, **provider_settings(fakes, BOTH)) as app:
        task, kinds = await run_task(app, keys, body, route=VIDEOS)
    assert task["status"] == "completed", task["error"]
    assert kinds == CHARGED and task["credits"] == 35  # the defaults: 1080p, 5 s
    sent = sent_to(fakes["kling"], prompt)
    assert sent["path"] == "/v1/videos/image2video"
    assert sent["image"] == ref and "image_tail" not in sent
    assert (sent["mode"], sent["duration"]) == ("pro", "5")
    assert "aspect_ratio" not in sent  # Kling's image2video takes the image's shape


async def test_first_last_frame_sends_the_tail_image_in_pro_mode(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory, images: Any, ref: str
) -> None:
    prompt = "a kling first and last frame"
    last = images.url("/img/600x800.png")
    body = {
        "model": "kling-v2.5-turbo",
        "type": "first-last-frame",
        "prompt": prompt,
        "images": [ref, last],
        "duration": 10,
    }
    async with live_gateway(make_settings, **provider_settings(fakes, BOTH)) as app:
        task, kinds = await run_task(app, keys, body, route=VIDEOS)
    assert task["status"] == "completed", task["error"]
    assert kinds == CHARGED and task["credits"] == 70
    sent = sent_to(fakes["kling"], prompt)
    assert (sent["image"], sent["image_tail"], sent["mode"]) == (ref, last, "pro")


async def test_kling_down_fails_over_to_fal_with_the_tail_image(
    fakes: dict[str, FakeState],
    make_settings: Any,
    keys: KeyFactory,
    images: Any,
    ref: str,
    kling_down: None,
) -> None:
    prompt = "a kling failover"
    last = images.url("/img/600x800.png")
    body = {
        "model": "kling-v2.5-turbo",
        "type": "first-last-frame",
        "prompt": prompt,
        "images": [ref, last],
    }
    async with live_gateway(make_settings, **provider_settings(fakes, BOTH)) as app:
        task, kinds = await run_task(app, keys, body, route=VIDEOS)
    assert task["status"] == "completed", task["error"]
    assert kinds == CHARGED and task["credits"] == 35
    assert all(b.get("prompt") != prompt for b in fakes["kling"].bodies)
    assert sent_to(fakes["fal"], prompt) == {
        "endpoint": "fal-ai/kling-video/v2.5-turbo/pro/image-to-video",
        "prompt": prompt,
        "image_url": ref,
        "tail_image_url": last,
        "duration": "5",
    }


async def test_cfg_scale_goes_to_fal_which_takes_it(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory
) -> None:
    prompt = "a kling cfg scale"
    body = {"model": "kling-v2.5-turbo", "prompt": prompt, "cfg_scale": 0.8}
    async with live_gateway(make_settings, **provider_settings(fakes, BOTH)) as app:
        task, kinds = await run_task(app, keys, body, route=VIDEOS)
    assert task["status"] == "completed", task["error"]
    assert kinds == CHARGED and task["credits"] == 35
    assert all(b.get("prompt") != prompt for b in fakes["kling"].bodies)
    assert sent_to(fakes["fal"], prompt) == {
        "endpoint": "fal-ai/kling-video/v2.5-turbo/pro/text-to-video",
        "prompt": prompt,
        "aspect_ratio": "16:9",
        "duration": "5",
        "cfg_scale": 0.8,
    }


async def test_720p_with_cfg_scale_is_refused_before_any_hold(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory
) -> None:
    """Kling does not take cfg_scale, fal does not serve 720p: nobody can honour both."""
    prompt = "a kling impossible task"
    body = {"model": "kling-v2.5-turbo", "prompt": prompt, "cfg_scale": 0.8, "resolution": "720p"}
    key = await keys(mode="live", credits=100, account="live-impossible")
    async with (
        live_gateway(make_settings, **provider_settings(fakes, BOTH)) as app,
        httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://gw") as client,
    ):
        answer = await client.post(VIDEOS, json=body, headers=key.headers)
        account = (await client.get("/api/v1/account", headers=key.headers)).json()
    assert answer.status_code == 400
    message = answer.json()["message"]
    assert "kling cannot honour cfg_scale" in message and "fal cannot honour resolution" in message
    assert account["data"]["credits"]["available"] == 100, account
    assert all(b.get("prompt") != prompt for s in fakes.values() for b in s.bodies)


@pytest.mark.parametrize("duplicates", ["refuse", "existing"])
async def test_a_lost_create_answer_is_found_again_by_external_task_id(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory, ref: str, duplicates: str
) -> None:
    """Kling creates the task but its answer is unreadable: the video query takes
    external_task_id, so the gateway finds the one task and pays for it once."""
    state = fakes["kling"]
    state.duplicates = duplicates  # type: ignore[assignment]
    created = state.calls["created"]
    body = {
        "model": "kling-v2.5-turbo",
        "type": "image-to-video",
        "prompt": f"[fake:malformed] a kling lost answer {duplicates}",
        "images": [ref],
    }
    try:
        async with live_gateway(make_settings, **provider_settings(fakes, ["kling"])) as app:
            task, kinds = await run_task(app, keys, body, route=VIDEOS)
    finally:
        state.duplicates = "refuse"
    assert task["status"] == "completed", task["error"]
    assert state.calls["created"] - created == 1 and kinds == CHARGED
    assert task["credits"] == 35
