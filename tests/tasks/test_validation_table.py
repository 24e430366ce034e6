"""Every validation rule of POST /api/v1/images/generations (API.md), one row each."""

import json
from typing import Any

import httpx2
import pytest

from mediagate.tasks.models import Task
from tests.factories import KeyFactory, generation

URL = "/api/v1/images/generations"
MS = {"type": "ai-multi-shot", "images": ["https://example.com/subject.png"]}

REJECTED: list[tuple[str, dict[str, Any], int, str, str | None]] = [
    # (case, body, status, error.type, error.param)
    ("model missing", {"prompt": "x"}, 400, "invalid_request_error", "model"),
    ("model not a string", generation(model=7), 400, "invalid_request_error", "model"),
    ("model unknown", generation(model="no-such-model"), 404, "not_found", "model"),
    ("prompt missing", {"model": "kling-image-o1"}, 400, "invalid_request_error", "prompt"),
    ("prompt null", generation(prompt=None), 400, "invalid_request_error", "prompt"),
    ("prompt not a string", generation(prompt=["a"]), 400, "invalid_request_error", "prompt"),
    ("prompt empty", generation(prompt=""), 400, "invalid_request_error", "prompt"),
    (
        "prompt blank after trim",
        generation(prompt="   \n\t "),
        400,
        "invalid_request_error",
        "prompt",
    ),
    ("prompt 2501 chars", generation(prompt="a" * 2501), 400, "invalid_request_error", "prompt"),
    ("type unknown", generation(type="text-to-video"), 400, "invalid_request_error", "type"),
    ("type not a string", generation(type=1), 400, "invalid_request_error", "type"),
    (
        "images not an array",
        generation(images="https://e.com/a.png"),
        400,
        "invalid_request_error",
        "images",
    ),
    (
        "images 11 items",
        generation(images=[f"https://e.com/{i}.png" for i in range(11)]),
        400,
        "invalid_request_error",
        "images",
    ),
    ("images item not a string", generation(images=[3]), 400, "invalid_request_error", "images"),
    (
        "images item ftp",
        generation(images=["ftp://e.com/a.png"]),
        400,
        "invalid_request_error",
        "images",
    ),
    (
        "images item file",
        generation(images=["file:///etc/passwd"]),
        400,
        "invalid_request_error",
        "images",
    ),
    (
        "images item no host",
        generation(images=["https:///a.png"]),
        400,
        "invalid_request_error",
        "images",
    ),
    (
        "images item 2049 chars",
        generation(images=["https://e.com/" + "a" * 2035]),
        400,
        "invalid_request_error",
        "images",
    ),
    (
        "images item with spaces",
        generation(images=["https://e.com/a b.png"]),
        400,
        "invalid_request_error",
        "images",
    ),
    (
        "images item bad port",
        generation(images=["https://e.com:99999/a.png"]),
        400,
        "invalid_request_error",
        "images",
    ),
    (
        "multi-shot without images",
        generation(type="ai-multi-shot"),
        400,
        "invalid_request_error",
        "images",
    ),
    (
        "multi-shot empty images",
        generation(type="ai-multi-shot", images=[]),
        400,
        "invalid_request_error",
        "images",
    ),
    (
        "multi-shot two images",
        generation(type="ai-multi-shot", images=["https://e.com/a.png", "https://e.com/b.png"]),
        400,
        "invalid_request_error",
        "images",
    ),
    (
        "multi-shot num_images 2",
        generation(**MS, num_images=2),
        400,
        "invalid_request_error",
        "num_images",
    ),
    (
        "aspect_ratio unknown",
        generation(aspect_ratio="5:4"),
        400,
        "invalid_request_error",
        "aspect_ratio",
    ),
    (
        "aspect_ratio not a string",
        generation(aspect_ratio=1.0),
        400,
        "invalid_request_error",
        "aspect_ratio",
    ),
    ("resolution 4k", generation(resolution="4k"), 400, "invalid_request_error", "resolution"),
    ("num_images 0", generation(num_images=0), 400, "invalid_request_error", "num_images"),
    ("num_images 10", generation(num_images=10), 400, "invalid_request_error", "num_images"),
    ("num_images string", generation(num_images="2"), 400, "invalid_request_error", "num_images"),
    ("num_images float", generation(num_images=2.5), 400, "invalid_request_error", "num_images"),
    ("num_images bool", generation(num_images=True), 400, "invalid_request_error", "num_images"),
    (
        "callback_url http",
        generation(callback_url="http://e.com/hook"),
        400,
        "invalid_request_error",
        "callback_url",
    ),
    (
        "callback_url not a URL",
        generation(callback_url="not a url"),
        400,
        "invalid_request_error",
        "callback_url",
    ),
    ("unknown field", generation(n=2), 400, "invalid_request_error", "n"),
    (
        "unknown field typo",
        generation(aspectratio="1:1"),
        400,
        "invalid_request_error",
        "aspectratio",
    ),
]

ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    ("minimal", generation()),
    ("prompt 2500 chars", generation(prompt="a" * 2500)),
    ("prompt trimmed", generation(prompt="  a fox  ")),
    ("10 images", generation(images=[f"https://e.com/{i}.png" for i in range(10)])),
    ("image 2048 chars", generation(images=["https://e.com/" + "a" * 2034])),
    ("http image", generation(images=["http://e.com/a.png"])),
    ("every aspect ratio: 21:9", generation(aspect_ratio="21:9")),
    ("aspect auto", generation(aspect_ratio="auto")),
    ("resolution upper case", generation(resolution="2K")),
    ("num_images 9", generation(num_images=9)),
    ("multi-shot", generation(**MS)),
    ("multi-shot num_images 1", generation(**MS, num_images=1)),
    ("nulls mean absent", generation(images=None, num_images=None, aspect_ratio=None)),
    ("https callback", generation(callback_url="https://e.com/hook")),
]


@pytest.mark.parametrize(
    ("case", "body", "status", "type_", "expected_param"), REJECTED, ids=[r[0] for r in REJECTED]
)
async def test_rejected(
    client: httpx2.AsyncClient,
    keys: KeyFactory,
    case: str,
    body: dict[str, Any],
    status: int,
    type_: str,
    expected_param: str | None,
) -> None:
    key = await keys()
    response = await client.post(URL, json=body, headers=key.headers)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["type"], error["param"]) == (type_, expected_param)
    assert response.json()["code"] == status
    assert error["message"]
    # Bad input loses nothing: no task, no hold.
    account = (await client.get("/api/v1/account", headers=key.headers)).json()["data"]
    assert account["credits"] == {"available": 100, "held": 0, "posted": 100}


@pytest.mark.parametrize(("case", "body"), ACCEPTED, ids=[r[0] for r in ACCEPTED])
async def test_accepted(
    client: httpx2.AsyncClient, keys: KeyFactory, case: str, body: dict[str, Any]
) -> None:
    key = await keys()
    response = await client.post(URL, json=body, headers=key.headers)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["code"] == 200 and data["message"] == "success"
    assert data["data"]["status"] == "IN_PROGRESS"
    task = (
        await client.get(f"/api/v1/tasks/{data['data']['task_id']}", headers=key.headers)
    ).json()["data"]
    assert task["credits"] == (16 if body.get("type") == "ai-multi-shot" else 6)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b"", "JSON object"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
async def test_body_must_be_a_json_object(
    client: httpx2.AsyncClient, keys: KeyFactory, raw: bytes, message: str
) -> None:
    key = await keys()
    response = await client.post(
        URL, content=raw, headers={**key.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert message in response.json()["error"]["message"]


async def test_defaults_are_filled_from_the_declaration(
    client: httpx2.AsyncClient, keys: KeyFactory, app: Any
) -> None:
    key = await keys()
    task_id = (
        await client.post(
            URL, json=generation(prompt="  fox  ", resolution="2K"), headers=key.headers
        )
    ).json()["data"]["task_id"]
    async with app.state.core.db.read() as session:
        task = await session.get(Task, task_id)
    assert task.params == {
        "prompt": "fox",
        "images": [],
        "aspect_ratio": "1:1",
        "resolution": "2k",
        "num_images": 1,
    }
    assert task.type == "image-to-image" and task.price == 6


async def test_body_over_the_limit_is_413(client: httpx2.AsyncClient, keys: KeyFactory) -> None:
    key = await keys()
    body = json.dumps(generation(prompt="a" * 70_000)).encode()
    response = await client.post(
        URL, content=body, headers={**key.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_chunked_body_over_the_limit_is_413(
    client: httpx2.AsyncClient, keys: KeyFactory
) -> None:
    key = await keys()

    async def chunks():  # no Content-Length: the limit must hold while streaming
        for _ in range(100):
            yield b" " * 1024

    response = await client.post(
        URL, content=chunks(), headers={**key.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
