"""The dashboard pages, over HTTP: model docs from the declaration, keys, usage and CSV,
admin credits."""

import asyncio
import csv
import html
import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
from markupsafe import escape

from mediagate.accounts import users
from mediagate.accounts.passwords import hash_blocking
from mediagate.app import build_runner, create_app
from mediagate.catalog.loader import load_catalog
from mediagate.catalog.schemas import limits_text
from mediagate.core.clock import utcnow
from mediagate.core.migrate import upgrade
from mediagate.core.settings import Settings
from tests.factories import generation
from tests.web.helpers import PASSWORD, page_token, post_form, sign_in, sign_up

NEW_KEY = re.compile(r'<code id="new-key">(aio_(?:test|live)_\w+)</code>')


def row(page: str, attribute: str, value: str) -> str:
    found = re.search(rf'<tr {attribute}="{re.escape(value)}">(.*?)</tr>', page, re.S)
    assert found, f"no row {attribute}={value}"
    return found.group(1)


async def test_model_page_shows_everything_the_declaration_says(client: httpx2.AsyncClient) -> None:
    spec = load_catalog().get("kling-image-o1")
    page = (await client.get("/models/kling-image-o1")).text
    assert html.escape(spec.description) in page
    for capability in spec.capabilities:
        assert f"<li>{capability}</li>" in page
    for task_type in spec.types.values():
        cells = row(page, "data-type", task_type.name)
        assert task_type.price.text() in cells
        assert html.escape(task_type.description) in cells
    for param in spec.params.values():
        cells = row(page, "data-param", param.name)
        if param.default is not None:
            assert f"<code>{json.dumps(param.default)}</code>" in cells, param.name
        assert html.escape(limits_text(param)) in cells, param.name
        assert html.escape(param.description) in cells
        for task_type in spec.types.values():  # per-type overrides, e.g. multi-shot: 1 image
            if task_type.params.get(param.name, param) != param:
                assert html.escape(limits_text(task_type.params[param.name])) in cells
    for question, answer in spec.faq:
        assert html.escape(question) in page and html.escape(answer) in page
    assert "POST /api/v1/images/generations" in page and "/api/v1/tasks/TASK_ID" in page
    assert "YOUR_API_KEY" in page
    example = json.dumps(
        {
            "model": spec.id,
            **{p.name: p.example for p in spec.params.values() if p.example is not None},
            # the reference: an example image this server hosts, so the curl works as written
            "images": ["http://gateway.test/static/examples/fox.png"],
        }
    )
    assert str(escape(example)) in page  # the curl body, readable


MODEL = """
id = "test-painter"
name = "Test Painter"
endpoint = "images/generations"
summary = "Declared by the test."
capabilities = ["text-to-image"]
deadline_s = 120

[types.paint]
price = {price}
description = "Paint."

[params.prompt]
type = "string"
required = true
min_length = 1
max_length = {max_length}
description = "What to paint."

[params.num_images]
type = "integer"
default = {default}
minimum = 1
maximum = 3

[[routes]]
provider = "wavespeed"

[routes.tasks.paint]
endpoint = "example/painter"
fields.prompt = "prompt"
fields.num_images = "num_images"
results = ["outputs[]"]
"""


async def test_the_model_page_follows_its_declaration(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    settings = make_settings(catalog_paths=[folder])
    await asyncio.to_thread(upgrade, settings)

    async def page_for(**values: int) -> str:
        (folder / "test-painter.toml").write_text(MODEL.format(**values))
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://t.test") as c:
                listed = (await c.get("/models")).text
                assert "/models/test-painter" in listed
                return (await c.get("/models/test-painter")).text

    before = await page_for(price=3, max_length=100, default=2)
    after = await page_for(price=11, max_length=250, default=3)
    assert "3 credits per request" in row(before, "data-type", "paint")
    assert "11 credits per request" in row(after, "data-type", "paint")
    assert "1–100 characters" in row(before, "data-param", "prompt")
    assert "1–250 characters" in row(after, "data-param", "prompt")
    assert "<code>2</code>" in row(before, "data-param", "num_images")
    assert "<code>3</code>" in row(after, "data-param", "num_images")


async def api(client: httpx2.AsyncClient, key: str, path: str = "/api/v1/account") -> int:
    return (await client.get(path, headers={"Authorization": f"Bearer {key}"})).status_code


async def create_key(client: httpx2.AsyncClient, name: str = "app") -> str:
    answer = await post_form(client, "/keys", "/keys", name=name, mode="test")
    found = NEW_KEY.search(answer.text)
    assert found, answer.text
    return found.group(1)


async def test_keys_create_shown_once_rotate_with_grace_and_revoke(
    client: httpx2.AsyncClient,
) -> None:
    await sign_up(client, "keys@example.com")
    raw = await create_key(client, "my-app")
    assert await api(client, raw) == 200
    listing = (await client.get("/keys")).text
    assert raw not in listing and "my-app" in listing  # shown once, then only its hint
    key_id = re.search(r'data-key="(key_\w+)"', listing).group(1)  # type: ignore[union-attr]

    rotated = await post_form(client, "/keys", f"/keys/{key_id}/rotate", grace="86400")
    new = NEW_KEY.search(rotated.text).group(1)  # type: ignore[union-attr]
    assert new != raw and await api(client, new) == 200
    assert await api(client, raw) == 200  # the old key still works during its grace day
    assert "active until" in row(rotated.text, "data-key", key_id)

    new_id = next(k for k in re.findall(r'data-key="(key_\w+)"', rotated.text) if k != key_id)
    now = await post_form(client, "/keys", f"/keys/{new_id}/rotate", grace="0")
    newest = NEW_KEY.search(now.text).group(1)  # type: ignore[union-attr]
    assert await api(client, new) == 401 and await api(client, newest) == 200

    bad = await post_form(client, "/keys", f"/keys/{new_id}/rotate", grace="12345")
    assert bad.status_code == 400 and "how long" in bad.text

    newest_id = re.findall(r'data-key="(key_\w+)"', now.text)[0]
    await post_form(client, "/keys", f"/keys/{newest_id}/revoke")
    assert await api(client, newest) == 401
    assert "revoked" in row((await client.get("/keys")).text, "data-key", newest_id)


async def test_a_user_cannot_touch_another_users_key(client: httpx2.AsyncClient) -> None:
    await sign_up(client, "owner@example.com")
    raw = await create_key(client)
    key_id = re.search(r'data-key="(key_\w+)"', (await client.get("/keys")).text).group(1)  # type: ignore[union-attr]
    client.cookies.clear()
    await sign_up(client, "other@example.com")
    answer = await post_form(client, "/keys", f"/keys/{key_id}/revoke")
    assert answer.status_code == 404
    assert await api(client, raw) == 200


@pytest.fixture
def app_with_runner(app: Any) -> Callable[[], Any]:
    core = app.state.core

    async def drain() -> None:
        await build_runner(core.db, core.settings, core.catalog, app.state.components).drain()

    return drain


async def test_usage_shows_ledger_and_tasks_and_exports_csv(
    client: httpx2.AsyncClient, app_with_runner: Callable[[], Any]
) -> None:
    await sign_up(client, "usage@example.com")
    raw = await create_key(client)
    auth = {"Authorization": f"Bearer {raw}"}
    for prompt in ("one", "two", "three [sandbox:fail]"):
        await client.post(
            "/api/v1/images/generations", json=generation(prompt=prompt), headers=auth
        )
    await app_with_runner()
    page = (await client.get("/usage")).text
    assert 'data-balance="test">88<' in page  # 100 welcome − 2 × 6
    kinds = re.findall(r'<tr data-kind="(\w+)">', page)
    assert kinds.count("capture") == 2 and kinds.count("release") == 1
    assert kinds.count("hold") == 3 and kinds.count("grant") == 1
    assert "welcome test credits" in page
    charted = (await client.get("/usage", params={"chart_mode": "test", "range": "7"})).text
    today = utcnow().date().isoformat()
    assert f'data-day="{today}" data-credits="12"' in charted
    assert 'data-model="kling-image-o1" data-tasks="3" data-success="67"' in charted

    export = await client.get("/usage/tasks.csv", params={"status": "completed"})
    assert export.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert len(rows) == 2 and {r["status"] for r in rows} == {"completed"}
    assert {r["credits"] for r in rows} == {"6"}
    failed = await client.get("/usage/tasks.csv", params={"status": "failed"})
    (failure,) = csv.DictReader(io.StringIO(failed.text))
    assert failure["credits"] == "0" and failure["error"]
    filtered = (await client.get("/usage", params={"status": "failed"})).text
    assert filtered.count("<td>failed</td>") == 1 and "<td>completed</td>" not in filtered

    gallery = (await client.get("/tasks")).text
    assert gallery.count('class="task"') == 3 and gallery.count("<img ") == 2


async def test_the_gallery_shows_a_video_by_its_poster(
    client: httpx2.AsyncClient, app_with_runner: Callable[[], Any]
) -> None:
    await sign_up(client, "gallery-video@example.com")
    raw = await create_key(client)
    body = {"model": "seedance-1-pro", "prompt": "a kite", "duration": 2, "resolution": "480p"}
    created = await client.post(
        "/api/v1/videos/generations", json=body, headers={"Authorization": f"Bearer {raw}"}
    )
    assert created.status_code == 200, created.text
    await app_with_runner()
    gallery = (await client.get("/tasks")).text
    [poster] = re.findall(r'<img src="[^"]*/files/([^"]+)" alt="Video', gallery)
    assert poster.endswith(".jpg")
    task_id = created.json()["data"]["task_id"]
    video = (
        await client.get(f"/api/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {raw}"})
    ).json()["data"]["output"]["videos"][0]
    assert f'<a href="{video["url"]}" aria-label="Video 1 of {task_id}' in gallery  # the file
    assert f'href="/tasks/{task_id}"' in gallery  # and the page where it plays
    assert "Video 1 of task_" in gallery and "(2.0 s)" in gallery


async def test_admin_grants_and_takes_back_credits_with_a_reason(
    client: httpx2.AsyncClient, db: Any
) -> None:
    await sign_up(client, "customer@example.com")
    async with db.write() as session:
        await users.create_user(
            session, "operator@example.com", hash_blocking(PASSWORD), admin=True
        )
    customer = client.cookies.get("mg_session")
    client.cookies.clear()
    await sign_in(client, "operator@example.com")
    page = (await client.get("/admin")).text
    account_id = re.search(
        r'data-account="customer@example.com">.*?name="account_id" value="(acc_\w+)"', page, re.S
    ).group(1)  # type: ignore[union-attr]
    granted = await post_form(
        client,
        "/admin",
        "/admin/credits",
        account_id=account_id,
        amount="500",
        mode="test",
        action="grant",
        reason="pilot customer",
    )
    assert granted.status_code == 303
    too_much = await post_form(
        client,
        "/admin",
        "/admin/credits",
        account_id=account_id,
        amount="100000",
        mode="test",
        action="revoke",
        reason="oops",
    )
    assert too_much.status_code == 400 and "nsufficient" in too_much.text
    no_reason = await post_form(
        client,
        "/admin",
        "/admin/credits",
        account_id=account_id,
        amount="5",
        mode="test",
        action="grant",
        reason="",
    )
    assert no_reason.status_code == 400 and "reason" in no_reason.text

    client.cookies.clear()
    client.cookies.set("mg_session", customer, domain="gateway.test")
    usage = (await client.get("/usage")).text
    assert 'data-balance="test">600<' in usage
    assert "pilot customer (by operator@example.com)" in usage
    assert page_token(usage)
