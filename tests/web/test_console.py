"""The console's pieces over HTTP: the key picker's list, the first test key a new account
is given, the model page's example that works as written, human numbers, the sandbox on
the operator's page."""

import asyncio
import html
import re
import shlex
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import pytest

from mediagate.accounts import users
from mediagate.accounts.passwords import hash_blocking
from mediagate.app import build_runner, create_app
from mediagate.core.migrate import upgrade
from mediagate.core.settings import Settings
from mediagate.ledger import service as ledger
from tests.web.helpers import PASSWORD, create_key, post_form, sign_in, sign_up

FIRST_KEY = re.compile(r'<code id="new-key">(aio_test_\w+)</code>')


async def test_the_picker_lists_the_accounts_usable_keys_by_hint_only(
    client: httpx2.AsyncClient,
) -> None:
    await sign_up(client, "other@example.com")
    theirs = await create_key(client, "theirs")
    client.cookies.clear()
    await sign_up(client, "picker@example.com")
    kept = await create_key(client, "kept")
    gone = await create_key(client, "gone")
    listing = (await client.get("/keys")).text
    gone_id = re.search(r'<tr data-key="(key_\w+)">\s*<td>gone</td>', listing).group(1)  # type: ignore[union-attr]
    await post_form(client, "/keys", f"/keys/{gone_id}/revoke")

    page = (await client.get("/console")).text
    options = re.findall(r'<option value="([^"]*)" data-name="([^"]*)">', page)
    hint = f"{kept[:13]}…{kept[-4:]}"  # keys/service.py `hint`, as console.js computes it
    assert (hint, "kept") in options
    assert all(name != "gone" and value != f"{gone[:13]}…{gone[-4:]}" for value, name in options)
    assert theirs[-4:] not in page and kept not in page and kept[13:-4] not in page
    assert 'id="upload"' in page and 'id="key-pick"' in page


async def test_a_new_account_is_shown_a_first_test_key_once(client: httpx2.AsyncClient) -> None:
    await sign_up(client, "first@example.com")
    first = (await client.get("/dashboard")).text
    found = FIRST_KEY.search(first)
    assert found and "Your first test key" in first
    key = found.group(1)
    account = await client.get("/api/v1/account", headers={"Authorization": f"Bearer {key}"})
    assert account.status_code == 200
    again = (await client.get("/dashboard")).text
    assert "Your first test key" not in again and key not in again
    keys_page = (await client.get("/keys")).text
    assert "first test key" in keys_page and key not in keys_page


@pytest.fixture
async def hosted(make_settings: Callable[..., Settings]) -> AsyncIterator[Any]:
    """An app whose public address is the test client's, as a deployment sets it."""
    settings = make_settings(public_base_url="http://gateway.test")
    await asyncio.to_thread(upgrade, settings)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


async def test_the_model_pages_example_works_as_written(hosted: Any) -> None:
    transport = httpx2.ASGITransport(app=hosted)
    async with httpx2.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
        await sign_up(c, "example@example.com")
        key = await create_key(c)
        page = (await c.get("/models/kling-image-o1")).text
        curl = re.search(r'<code id="example-curl">(.*?)</code>', page, re.S)
        assert curl
        written = html.unescape(curl.group(1)).replace("YOUR_API_KEY", key)
        words = shlex.split(written.replace("\\\n", " "))
        assert words[0] == "curl" and words[1].startswith("http://gateway.test/")
        headers = dict(words[i + 1].split(": ", 1) for i, w in enumerate(words) if w == "-H")
        body = words[words.index("-d") + 1]
        assert "http://gateway.test/static/examples/fox.png" in body
        image = await c.get("/static/examples/fox.png")
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"

        answer = await c.post(words[1], content=body, headers=headers)
        assert answer.status_code == 200, answer.text
        task_id = answer.json()["data"]["task_id"]
        core = hosted.state.core
        await build_runner(core.db, core.settings, core.catalog, hosted.state.components).drain()
        task = await c.get(f"/api/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {key}"})
        assert task.json()["data"]["status"] == "completed", task.json()


async def test_numbers_are_grouped_and_the_sandbox_is_among_the_providers(
    client: httpx2.AsyncClient, db: Any
) -> None:
    async with db.write() as session:
        user = await users.create_user(
            session, "rich-op@example.com", hash_blocking(PASSWORD), admin=True
        )
        await ledger.grant(session, user.account_id, "live", 1_234_567, reason="a lot")
    await sign_in(client, "rich-op@example.com")
    dashboard = (await client.get("/dashboard")).text
    assert 'data-balance="live">1,234,567<' in dashboard
    admin = (await client.get("/admin")).text
    sandbox = re.search(r'<tr data-provider="sandbox">(.*?)</tr>', admin, re.S)
    assert sandbox and "always (test keys)" in sandbox.group(1)
    assert '<tr data-provider="wavespeed">' in admin
    assert "1,234,567" in admin
