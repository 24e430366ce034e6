"""The image models' second routes, on WaveSpeed (issue 15): each model and type sent
through the WaveSpeed fake with the body its API page documents (the fake checks it
against tests/providers/fixtures/wavespeed_models.json), fal preferred while it is up,
WaveSpeed taking the task when fal is down, charged once, and params WaveSpeed cannot
honour keeping a task off it."""

import json
from typing import Any

import httpx2
import pytest

from tests.factories import KeyFactory
from tests.providers.fakes import FIXTURES, FakeState
from tests.providers.test_providers import CHARGED, live_gateway, provider_settings, run_task

REF = "{ref}"
"""Stands for the reference image URL in the cases below."""

# (model, request params, WaveSpeed model id, the body WaveSpeed gets, outputs, credits)
CASES: list[tuple[str, dict[str, Any], str, dict[str, Any], int, int]] = [
    (
        "seedream-4",
        {"type": "text-to-image", "size": "2304x1728"},
        "bytedance/seedream-v4",
        {"size": "2304*1728"},
        1,
        3,
    ),
    (
        "seedream-4",
        {"type": "image-to-image", "size": "1024x1024", "images": [REF, REF]},
        "bytedance/seedream-v4/edit",
        {"images": [REF, REF], "size": "1024*1024"},
        1,
        3,
    ),
    (
        "nano-banana",
        {"aspect_ratio": "16:9"},
        "google/nano-banana/text-to-image",
        {"aspect_ratio": "16:9", "output_format": "png"},
        1,
        4,
    ),
    (
        "nano-banana",
        {"type": "image-to-image", "images": [REF], "aspect_ratio": "4:5"},
        "google/nano-banana/edit",
        {"images": [REF], "aspect_ratio": "4:5", "output_format": "png"},
        1,
        4,
    ),
    (
        "flux-kontext-pro",
        {"images": [REF]},
        "wavespeed-ai/flux-kontext-pro",
        {"image": REF},
        1,
        4,
    ),
    (
        "flux-kontext-pro",
        {"type": "text-to-image", "aspect_ratio": "9:21", "num_images": 3, "seed": 11},
        "wavespeed-ai/flux-kontext-pro/text-to-image",
        {"aspect_ratio": "9:21", "num_images": 3, "seed": 11},
        3,
        12,
    ),
    (
        "imagen-4",
        {"aspect_ratio": "4:3", "num_images": 2, "seed": 5},
        "wavespeed-ai/imagen4",
        {"aspect_ratio": "4:3", "num_images": 2, "seed": 5},
        2,
        8,
    ),
    (
        "qwen-image",
        {"aspect_ratio": "16:9", "seed": 3},
        "wavespeed-ai/qwen-image/text-to-image",
        {"size": "1024*576", "seed": 3, "output_format": "png"},
        1,
        2,
    ),
    (
        "qwen-image",
        {
            "type": "image-to-image",
            "aspect_ratio": "9:16",
            "images": [REF],
            "output_format": "jpeg",
        },
        "wavespeed-ai/qwen-image/edit",
        {"image": REF, "size": "576*1024", "output_format": "jpeg"},
        1,
        3,
    ),
]
IDS = [f"{model}-{params.get('type', 'default')}" for model, params, *_ in CASES]


def filled(value: Any, ref: str) -> Any:
    if value == REF:
        return ref
    if isinstance(value, list):
        return [filled(v, ref) for v in value]
    if isinstance(value, dict):
        return {k: filled(v, ref) for k, v in value.items()}
    return value


def documented_models() -> dict[str, dict[str, Any]]:
    raw = json.loads((FIXTURES / "wavespeed_models.json").read_text())
    return {k: v for k, v in raw.items() if not k.startswith("_")}


@pytest.mark.parametrize("model_id", sorted(documented_models()))
async def test_the_fake_takes_each_documented_example_and_refuses_an_undocumented_field(
    fakes: dict[str, FakeState], model_id: str
) -> None:
    state = fakes["wavespeed"]
    example = documented_models()[model_id]["example"]
    headers = {"Authorization": f"Bearer {state.key}"}
    url = f"{state.base}/api/v3/{model_id}"
    async with httpx2.AsyncClient(timeout=10) as client:
        accepted = await client.post(url, json=example, headers=headers)
        extra = await client.post(url, json={**example, "num_outputs": 2}, headers=headers)
        missing = await client.post(url, json={"enable_sync_mode": False}, headers=headers)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["data"]["status"] == "created"
    assert extra.status_code == 400 and "bad fields" in extra.json()["message"]
    assert missing.status_code == 400


async def test_the_fake_checks_sizes_and_enums_as_documented(fakes: dict[str, FakeState]) -> None:
    state = fakes["wavespeed"]
    headers = {"Authorization": f"Bearer {state.key}"}
    one = "https://example.com/a.png"
    bad = [
        ("bytedance/seedream-v4", {"prompt": "x", "size": "2048x2048"}),  # the docs' W*H
        ("bytedance/seedream-v4", {"prompt": "x", "size": "512*512"}),  # under 1024
        ("wavespeed-ai/qwen-image/text-to-image", {"prompt": "x", "size": "2048*2048"}),
        ("google/nano-banana/text-to-image", {"prompt": "x", "output_format": "webp"}),
        ("wavespeed-ai/imagen4", {"prompt": "x", "aspect_ratio": "21:9"}),
        ("wavespeed-ai/flux-kontext-pro", {"prompt": "x", "image": one, "safety_tolerance": "6"}),
        ("bytedance/seedream-v4/edit", {"prompt": "x", "images": one}),  # not a list
    ]
    async with httpx2.AsyncClient(timeout=10) as client:
        for model_id, body in bad:
            url = f"{state.base}/api/v3/{model_id}"
            answer = await client.post(url, json=body, headers=headers)
            assert answer.status_code == 400, (model_id, body, answer.text)


@pytest.mark.parametrize(("model", "params", "model_id", "sent", "count", "price"), CASES, ids=IDS)
async def test_wavespeed_gets_the_documented_body(
    fakes: dict[str, FakeState],
    make_settings: Any,
    keys: KeyFactory,
    ref: str,
    model: str,
    params: dict[str, Any],
    model_id: str,
    sent: dict[str, Any],
    count: int,
    price: int,
) -> None:
    state = fakes["wavespeed"]
    prompt = f"wavespeed {model_id}"
    body = {"model": model, "prompt": prompt, **filled(params, ref)}
    async with live_gateway(make_settings, **provider_settings(fakes, ["wavespeed"])) as app:
        task, kinds = await run_task(app, keys, body)
    assert task["status"] == "completed", task["error"]
    assert kinds == CHARGED and task["credits"] == price
    assert len(task["output"]["images"]) == count
    got = next(b for b in reversed(state.bodies) if b.get("prompt") == prompt)
    assert got == {"model": model_id, "prompt": prompt, **filled(sent, ref)}


async def test_fal_is_preferred_while_it_is_up(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory
) -> None:
    prompt = "imagen preferred on fal"
    body = {"model": "imagen-4", "prompt": prompt, "aspect_ratio": "16:9"}
    both = provider_settings(fakes, ["fal", "wavespeed"])
    async with live_gateway(make_settings, **both) as app:
        task, kinds = await run_task(app, keys, body)
    assert task["status"] == "completed", task["error"]
    assert kinds == CHARGED
    assert any(b.get("prompt") == prompt for b in fakes["fal"].bodies)
    assert all(b.get("prompt") != prompt for b in fakes["wavespeed"].bodies)


@pytest.mark.parametrize(
    ("model", "params", "price"),
    [
        ("imagen-4", {"aspect_ratio": "9:16", "num_images": 2}, 8),
        ("nano-banana", {"type": "image-to-image", "images": [REF]}, 4),
    ],
)
async def test_fal_down_wavespeed_takes_the_task_charged_once(
    fakes: dict[str, FakeState],
    make_settings: Any,
    keys: KeyFactory,
    ref: str,
    model: str,
    params: dict[str, Any],
    price: int,
) -> None:
    fal, ws = fakes["fal"], fakes["wavespeed"]
    prompt = f"[fal-down] {model} fails over"
    fal_submits, ws_created = fal.calls["submit"], ws.calls["created"]
    body = {"model": model, "prompt": prompt, **filled(params, ref)}
    both = provider_settings(fakes, ["fal", "wavespeed"])
    async with live_gateway(make_settings, **both) as app:
        task, kinds = await run_task(app, keys, body)
    assert task["status"] == "completed", task["error"]
    assert kinds == CHARGED and task["credits"] == price  # one hold, one capture
    assert fal.calls["submit"] > fal_submits  # fal was tried first
    assert all(b.get("prompt") != prompt for b in fal.bodies)  # and never took it
    assert ws.calls["created"] - ws_created == 1  # one upstream job
    assert sum(b.get("prompt") == prompt for b in ws.bodies) == 1


@pytest.mark.parametrize(
    ("model", "params", "param"),
    [
        ("seedream-4", {"num_images": 2}, "num_images"),
        ("nano-banana", {"output_format": "webp"}, "output_format"),
        ("imagen-4", {"resolution": "2k"}, "resolution"),
        (
            "flux-kontext-pro",
            {"type": "text-to-image", "safety_tolerance": "6"},
            "safety_tolerance",
        ),
        ("qwen-image", {"negative_prompt": "blurry"}, "negative_prompt"),
    ],
)
async def test_a_param_wavespeed_cannot_honour_is_refused_before_any_hold(
    fakes: dict[str, FakeState],
    make_settings: Any,
    keys: KeyFactory,
    model: str,
    params: dict[str, Any],
    param: str,
) -> None:
    submits = fakes["wavespeed"].calls["submit"]
    key = await keys(mode="live", credits=100, account=f"live-{model}-unsupported")
    body = {"model": model, "prompt": f"{model} asks for {param}", **params}
    only_ws = provider_settings(fakes, ["wavespeed"])
    async with (
        live_gateway(make_settings, **only_ws) as app,
        httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://gw") as client,
    ):
        answer = await client.post("/api/v1/images/generations", json=body, headers=key.headers)
    assert answer.status_code == 400, answer.text
    assert f"wavespeed cannot honour {param}" in answer.json()["message"]
    assert fakes["wavespeed"].calls["submit"] == submits
