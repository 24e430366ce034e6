"""The OpenAI-compatible door on the real app: shapes, size rules, errors, the deadline."""

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx2
import pytest

from mediagate.app import create_app
from mediagate.catalog.loader import load_catalog
from mediagate.catalog.openai_rules import parse_openai_rules
from mediagate.core.migrate import upgrade
from mediagate.core.settings import Settings
from mediagate.media.images import inspect_image
from mediagate.openai_compat.sizes import nearest_sizes
from tests.factories import KeyFactory, MadeKey
from tests.servers import make_image

GENERATE = "/v1/images/generations"
EDIT = "/v1/images/edits"
MODEL = "kling-image-o1"


@pytest.fixture
async def served(make_settings: Callable[..., Settings]) -> AsyncIterator[Any]:
    async def start(**overrides: Any) -> tuple[Any, httpx2.AsyncClient, MadeKey]:
        # A short deadline by default: a test that fails does not wait two minutes.
        settings = make_settings(**{"openai_deadline_s": 10, **overrides})
        await asyncio.to_thread(upgrade, settings)  # it runs its own event loop
        app = create_app(settings)
        await stack.enter_async_context(app.router.lifespan_context(app))
        client = await stack.enter_async_context(
            httpx2.AsyncClient(
                transport=httpx2.ASGITransport(app=app), base_url="http://gateway.test"
            )
        )
        key = await KeyFactory(app.state.core.db, settings)(credits=100)
        return app, client, key

    async with AsyncExitStack() as stack:
        yield start


def assert_openai_error(
    response: httpx2.Response, status: int, type_: str, param: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert {"message", "type", "param", "code"} <= set(error)
    assert error["type"] == type_
    assert error["param"] == param
    assert error["message"]
    return dict(error)


async def test_generation_answers_with_urls_of_the_completed_task(served: Any) -> None:
    _, client, key = await served(embedded_runner=True, sandbox_latency_s=0.1)
    response = await client.post(
        GENERATE,
        json={"model": MODEL, "prompt": "a fox", "n": 2, "size": "1536x1024", "user": "u1"},
        headers=key.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body["created"], int)
    assert len(body["data"]) == 2
    image = await client.get(body["data"][0]["url"])
    assert image.status_code == 200
    info = inspect_image(image.content)
    assert info.width > info.height  # 3:2, as the size rule says
    listed = (await client.get("/api/v1/tasks", headers=key.headers)).json()["data"]["tasks"]
    assert listed[0]["status"] == "completed"
    assert listed[0]["credits"] == 6  # the native pipeline's price and hold


async def test_generation_answers_b64_json(served: Any) -> None:
    _, client, key = await served(embedded_runner=True, sandbox_latency_s=0.1)
    response = await client.post(
        GENERATE,
        json={"model": MODEL, "prompt": "a fox", "response_format": "b64_json"},
        headers=key.headers,
    )
    assert response.status_code == 200, response.text
    (item,) = response.json()["data"]
    assert set(item) == {"b64_json"}
    assert inspect_image(base64.b64decode(item["b64_json"])).width > 0


async def test_edit_takes_multipart_images(served: Any) -> None:
    _, client, key = await served(embedded_runner=True, sandbox_latency_s=0.1)
    files = [
        ("image[]", ("a.png", make_image(600, 400), "image/png")),
        ("image[]", ("b.png", make_image(500, 500, color=(10, 200, 10)), "image/png")),
    ]
    response = await client.post(
        EDIT,
        data={"model": MODEL, "prompt": "the two together", "size": "1024x1024"},
        files=files,
        headers=key.headers,
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]) == 1
    task = (await client.get("/api/v1/tasks", headers=key.headers)).json()["data"]["tasks"][0]
    assert task["status"] == "completed"


async def test_timeout_answers_504_with_the_task_id_and_no_retry(served: Any) -> None:
    _, client, key = await served(openai_deadline_s=0.5)  # no runner: it never ends
    response = await client.post(
        GENERATE, json={"model": MODEL, "prompt": "x"}, headers=key.headers
    )
    error = assert_openai_error(response, 504, "server_error")
    assert error["code"] == "task_in_progress"
    assert response.headers["x-should-retry"] == "false"
    task = await client.get(f"/api/v1/tasks/{error['task_id']}", headers=key.headers)
    assert task.json()["data"]["status"] == "IN_PROGRESS"
    assert error["task_id"] in error["message"]


async def test_models_in_openais_list_shape(served: Any) -> None:
    _, client, key = await served()
    body = (await client.get("/v1/models", headers=key.headers)).json()
    assert body["object"] == "list"
    catalog = (await client.get("/api/v1/models")).json()["data"]
    image_models = {m["id"] for m in catalog if m["endpoint"].endswith("/images/generations")}
    assert MODEL in image_models and len(image_models) > 1
    assert {m["id"] for m in body["data"]} == image_models
    assert all(m["object"] == "model" and isinstance(m["created"], int) for m in body["data"])
    one = await client.get(f"/v1/models/{MODEL}", headers=key.headers)
    assert one.json()["id"] == MODEL
    assert_openai_error(
        await client.get("/v1/models/dall-e-3", headers=key.headers),
        404,
        "invalid_request_error",
        "model",
    )


CASES = [
    ("unsupported size", {"size": "1000x1000"}, 400, "invalid_request_error", "size"),
    ("size not WxH", {"size": "big"}, 400, "invalid_request_error", "size"),
    ("unknown model", {"model": "dall-e-3"}, 404, "invalid_request_error", "model"),
    ("no model", {"model": None}, 400, "invalid_request_error", "model"),
    ("no prompt", {"prompt": None}, 400, "invalid_request_error", "prompt"),
    ("n too large", {"n": 10}, 400, "invalid_request_error", "n"),
    ("n not int", {"n": "2"}, 400, "invalid_request_error", "n"),
    (
        "bad response_format",
        {"response_format": "png"},
        400,
        "invalid_request_error",
        "response_format",
    ),
    ("bad quality", {"quality": "ultra"}, 400, "invalid_request_error", "quality"),
    ("unknown field", {"background": "transparent"}, 400, "invalid_request_error", "background"),
    ("prompt too long", {"prompt": "x" * 2501}, 400, "invalid_request_error", "prompt"),
]


@pytest.mark.parametrize(("case", "fields", "status", "type_", "param"), CASES)
async def test_generation_errors_in_openais_shape(
    served: Any, case: str, fields: dict[str, Any], status: int, type_: str, param: str
) -> None:
    _, client, key = await served()
    body = {k: v for k, v in {"model": MODEL, "prompt": "a fox", **fields}.items() if v is not None}
    response = await client.post(GENERATE, json=body, headers=key.headers)
    assert_openai_error(response, status, type_, param)
    listed = (await client.get("/api/v1/tasks", headers=key.headers)).json()["data"]["tasks"]
    assert listed == []  # nothing was created


async def test_unsupported_size_names_the_nearest_supported(served: Any) -> None:
    _, client, key = await served()
    response = await client.post(
        GENERATE, json={"model": MODEL, "prompt": "a", "size": "1800x1000"}, headers=key.headers
    )
    error = assert_openai_error(response, 400, "invalid_request_error", "size")
    assert error["code"] == "unsupported_size"
    assert "nearest supported: 2048x1152, 1792x1024" in error["message"]


async def test_other_errors_in_openais_shape(served: Any) -> None:
    app, client, key = await served()
    missing = await client.post(GENERATE, json={"model": MODEL, "prompt": "a"})
    error = assert_openai_error(missing, 401, "authentication_error")
    assert "missing" in error["message"].lower()
    wrong = await client.post(
        GENERATE, json={"model": MODEL, "prompt": "a"}, headers={"Authorization": "Bearer nope"}
    )
    assert_openai_error(wrong, 401, "authentication_error")
    form = await client.post(GENERATE, data={"model": MODEL, "prompt": "a"}, headers=key.headers)
    assert_openai_error(form, 415, "invalid_request_error", "Content-Type")
    broke = await KeyFactory(app.state.core.db, app.state.core.settings)(account="b", credits=0)
    poor = await client.post(GENERATE, json={"model": MODEL, "prompt": "a"}, headers=broke.headers)
    assert_openai_error(poor, 402, "insufficient_quota")
    assert_openai_error(
        await client.get("/v1/nothing", headers=key.headers), 404, "invalid_request_error"
    )
    assert_openai_error(
        await client.get(GENERATE, headers=key.headers), 405, "invalid_request_error"
    )
    broken = await client.post(
        GENERATE, content=b"{not json", headers={**key.headers, "Content-Type": "application/json"}
    )
    assert_openai_error(broken, 400, "invalid_request_error")


async def test_edit_errors(served: Any) -> None:
    _, client, key = await served()
    png = ("a.png", make_image(600, 400), "image/png")
    fields = {"model": MODEL, "prompt": "p"}
    mask = await client.post(
        EDIT, data=fields, files=[("image", png), ("mask", png)], headers=key.headers
    )
    assert_openai_error(mask, 400, "invalid_request_error", "mask")
    none = await client.post(EDIT, data=fields, files=[("other", png)], headers=key.headers)
    assert_openai_error(none, 400, "invalid_request_error", "other")
    small = ("s.png", make_image(100, 100), "image/png")
    tiny = await client.post(EDIT, data=fields, files=[("image", small)], headers=key.headers)
    error = assert_openai_error(tiny, 400, "invalid_request_error", "image")
    assert "image[0]" in error["message"]
    not_image = ("x.png", b"hello", "image/png")
    junk = await client.post(EDIT, data=fields, files=[("image", not_image)], headers=key.headers)
    assert_openai_error(junk, 400, "invalid_request_error", "image")
    json_body = await client.post(EDIT, json=fields, headers=key.headers)
    assert_openai_error(json_body, 415, "invalid_request_error")
    too_many = [("image[]", png)] * 11
    many = await client.post(EDIT, data=fields, files=too_many, headers=key.headers)
    assert_openai_error(many, 400, "invalid_request_error", "image")
    listed = (await client.get("/api/v1/tasks", headers=key.headers)).json()["data"]["tasks"]
    assert listed == []


async def test_edit_body_over_the_cap_is_413_naming_it(served: Any) -> None:
    _, client, key = await served(upload_max_bytes=50_000)
    big = ("big.png", make_image(600, 400) + b"\0" * 200_000, "image/png")
    response = await client.post(
        EDIT, data={"model": MODEL, "prompt": "p"}, files=[("image", big)], headers=key.headers
    )
    error = assert_openai_error(response, 413, "invalid_request_error")
    assert "at most 50000 bytes (MEDIAGATE_UPLOAD_MAX_BYTES)" in error["message"]


def test_nearest_sizes_by_shape_then_pixels() -> None:
    supported = ["1024x1024", "2048x2048", "1792x1024", "1024x1792", "2048x1152"]
    assert nearest_sizes("1000x1000", supported, 2) == ["1024x1024", "2048x2048"]
    assert nearest_sizes("1920x1080", supported, 2) == ["2048x1152", "1792x1024"]


@pytest.mark.parametrize(
    ("rules", "problem"),
    [
        ({"sizes": {"1024x1024": {"aspect_ratio": "5:4"}}}, "5:4"),
        ({"sizes": {"1024x1024": {"colour": "red"}}}, "colour"),
        ({"sizes": {"big": {}}}, "WIDTHxHEIGHT"),
        ({"n": "prompt"}, "openai.n"),
        ({"images": "num_images"}, "openai.images"),
        ({"default_size": "512x512"}, "default_size"),
        ({"type": "nope"}, "openai.type"),
        ({"sizez": {}}, "unknown keys"),
    ],
)
def test_openai_rules_are_checked_at_load(rules: dict[str, Any], problem: str) -> None:
    model = load_catalog().get(MODEL)
    with pytest.raises(ValueError, match=problem):
        parse_openai_rules(rules, model.types, model.default_type)
