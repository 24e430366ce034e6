"""Every row of the error table of API.md: status, error.type, error.param, envelope."""

import asyncio
import fcntl
import json
import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import asyncpg
import httpx2
import pytest
from sqlalchemy import update

from mediagate.app import build_runner, create_app
from mediagate.core.clock import utcnow
from mediagate.core.settings import Settings
from mediagate.keys.models import ApiKey
from mediagate.keys.service import checksum
from mediagate.ledger import service as ledger
from tests.factories import KeyFactory, generation

URL = "/api/v1/images/generations"


def assert_error(
    response: httpx2.Response, status: int, type_: str, param: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == status
    assert body["error"]["type"] == type_
    assert body["error"]["param"] == param
    assert body["message"] == body["error"]["message"]
    return body["error"]


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


MISSING = "Missing API key: send it as the header Authorization: Bearer <key>"


@pytest.mark.parametrize(
    ("case", "headers", "message"),
    [
        ("no header", {}, MISSING),
        ("empty header", {"Authorization": ""}, MISSING),
        ("empty bearer", {"Authorization": "Bearer "}, MISSING),
        (
            "not bearer",
            {"Authorization": "Basic abc"},
            "The Authorization header must be Bearer <key>",
        ),
        ("malformed", bearer("sk-not-ours"), "Invalid API key"),
        ("wrong prefix", bearer("aio_prod_" + "a" * 36), "Invalid API key"),
        ("bad checksum", bearer("aio_test_" + "a" * 30 + "zzzzzz"), "Invalid API key"),
        (
            "well formed but unknown",
            bearer("aio_test_" + "b" * 30 + checksum("aio_test_" + "b" * 30)),
            "Invalid API key",
        ),
    ],
)
async def test_401_for_missing_malformed_or_unknown_keys(
    client: httpx2.AsyncClient, case: str, headers: dict[str, str], message: str
) -> None:
    for response in (
        await client.post(URL, json=generation(), headers=headers),
        await client.get("/api/v1/tasks/task_x", headers=headers),
        await client.get("/api/v1/tasks", headers=headers),
    ):
        error = assert_error(response, 401, "authentication_error")
        assert error["message"] == message


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/json", 200),
        ("application/json; charset=utf-8", 200),
        ("application/json;charset=UTF-8", 200),
        ("Application/JSON", 200),
        ("application/merge-patch+json", 200),
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),
        ("multipart/form-data; boundary=x", 415),
        ("text/json", 415),
        (None, 415),
    ],
)
async def test_415_unless_the_body_says_it_is_json(
    client: httpx2.AsyncClient, keys: KeyFactory, content_type: str | None, status: int
) -> None:
    key = await keys()
    headers = {**key.headers, **({"Content-Type": content_type} if content_type else {})}
    body = json.dumps(generation()).encode()
    response = await client.post(URL, content=body, headers=headers)
    if status == 200:
        assert response.status_code == 200, response.text
        return
    error = assert_error(response, 415, "invalid_request_error", "Content-Type")
    assert (content_type or "missing") in error["message"]
    assert "application/json" in error["message"]
    listed = await client.get("/api/v1/tasks", headers=key.headers)
    assert listed.json()["data"]["tasks"] == []  # nothing was created, nothing held


async def test_401_for_revoked_and_expired_keys(
    client: httpx2.AsyncClient, keys: KeyFactory, app: Any
) -> None:
    revoked, expired = await keys(account="a"), await keys(account="b")
    async with app.state.core.db.write() as session:
        await session.execute(
            update(ApiKey).where(ApiKey.id == revoked.id).values(revoked_at=utcnow())
        )
        await session.execute(
            update(ApiKey)
            .where(ApiKey.id == expired.id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    for key in (revoked, expired):
        assert_error(
            await client.post(URL, json=generation(), headers=key.headers),
            401,
            "authentication_error",
        )


async def test_402_when_the_hold_would_overdraw(
    client: httpx2.AsyncClient, keys: KeyFactory
) -> None:
    key = await keys(credits=10)
    assert (await client.post(URL, json=generation(), headers=key.headers)).status_code == 200
    error = assert_error(
        await client.post(
            URL,
            json=generation(type="ai-multi-shot", images=["https://e.com/a.png"]),
            headers=key.headers,
        ),
        402,
        "insufficient_credits",
    )
    assert error["message"] == "Insufficient credits: 16 needed, 4 available"


async def test_404_unknown_model_and_unknown_or_foreign_task(
    client: httpx2.AsyncClient, keys: KeyFactory
) -> None:
    mine, theirs = await keys(account="mine"), await keys(account="theirs")
    assert_error(
        await client.post(URL, json=generation(model="dall-e-9"), headers=mine.headers),
        404,
        "not_found",
        "model",
    )
    task_id = (await client.post(URL, json=generation(), headers=theirs.headers)).json()["data"][
        "task_id"
    ]
    assert_error(
        await client.get(f"/api/v1/tasks/{task_id}", headers=mine.headers),
        404,
        "not_found",
        "task_id",
    )
    assert_error(
        await client.get("/api/v1/tasks/task_doesnotexist", headers=mine.headers),
        404,
        "not_found",
        "task_id",
    )
    assert (await client.get(f"/api/v1/tasks/{task_id}", headers=theirs.headers)).status_code == 200
    assert_error(await client.get("/api/v1/models/dall-e-9"), 404, "not_found", "model")


async def test_idempotency_replay_returns_the_same_task_and_holds_once(
    client: httpx2.AsyncClient, keys: KeyFactory
) -> None:
    key = await keys(credits=100)
    headers = {**key.headers, "Idempotency-Key": "order-42"}
    first = await client.post(URL, json=generation(num_images=2), headers=headers)
    # Same body, different key order and spacing: still the same request.
    second = await client.post(
        URL,
        content=b'{"num_images": 2, "prompt": "a red fox",  "model": "kling-image-o1"}',
        headers={**headers, "Content-Type": "application/json; charset=utf-8"},
    )
    assert first.status_code == second.status_code == 200
    assert first.json()["data"]["task_id"] == second.json()["data"]["task_id"]
    credits = (await client.get("/api/v1/account", headers=key.headers)).json()["data"]["credits"]
    assert credits["held"] == 6 and credits["available"] == 94


async def test_422_idempotency_key_reused_with_another_body(
    client: httpx2.AsyncClient, keys: KeyFactory
) -> None:
    key = await keys()
    headers = {**key.headers, "Idempotency-Key": "order-43"}
    assert (await client.post(URL, json=generation(), headers=headers)).status_code == 200
    assert_error(
        await client.post(URL, json=generation(prompt="another"), headers=headers),
        422,
        "idempotency_error",
    )
    other = await keys(account="other")  # keys are scoped to the account
    assert (
        await client.post(
            URL,
            json=generation(prompt="another"),
            headers={**other.headers, "Idempotency-Key": "order-43"},
        )
    ).status_code == 200


async def test_409_while_the_first_request_with_the_key_is_processing(
    client: httpx2.AsyncClient, keys: KeyFactory, settings: Settings
) -> None:
    key = await keys()
    headers = {**key.headers, "Idempotency-Key": "order-44"}
    # Another writer holds what the first request needs: it waits inside its transaction.
    async with hold_the_wallet(settings, key.account_id):
        first = asyncio.create_task(client.post(URL, json=generation(), headers=headers))
        await asyncio.sleep(0.3)
        assert not first.done()
        second = await client.post(URL, json=generation(), headers=headers)
        assert_error(second, 409, "idempotency_error")
    assert (await first).status_code == 200


@asynccontextmanager
async def hold_the_wallet(settings: Settings, account_id: str) -> AsyncIterator[None]:
    """SQLite: the write lock, taken as another mediagate process takes it (the writers'
    gate, then the database). PostgreSQL: the wallet row's lock."""
    if settings.database_url is None:
        gate = os.open(f"{settings.data_dir / 'mediagate.db'}.write-lock", os.O_RDWR | os.O_CREAT)
        fcntl.flock(gate, fcntl.LOCK_EX)
        blocker = sqlite3.connect(settings.data_dir / "mediagate.db", timeout=30)
        blocker.isolation_level = None
        blocker.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
            fcntl.flock(gate, fcntl.LOCK_UN)
            os.close(gate)
        return
    conn = await asyncpg.connect(settings.database_url.replace("+asyncpg", ""))
    try:
        async with conn.transaction():
            await conn.execute(
                "SELECT 1 FROM ledger_accounts WHERE id = $1 FOR UPDATE", f"{account_id}:test"
            )
            yield
    finally:
        await conn.close()


async def test_idempotency_key_too_long_is_400(
    client: httpx2.AsyncClient, keys: KeyFactory
) -> None:
    key = await keys()
    response = await client.post(
        URL, json=generation(), headers={**key.headers, "Idempotency-Key": "k" * 256}
    )
    assert_error(response, 400, "invalid_request_error", "Idempotency-Key")


async def test_429_per_key_rate_with_retry_after(make_settings: Any, keys: KeyFactory) -> None:
    app = create_app(make_settings(rate_limit_per_s=1, rate_limit_burst=2))
    async with (
        app.router.lifespan_context(app),
        httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as c,
    ):
        key = await keys()
        statuses = [(await c.get("/api/v1/account", headers=key.headers)) for _ in range(3)]
    assert [r.status_code for r in statuses[:2]] == [200, 200]
    assert_error(statuses[2], 429, "rate_limit_error")
    assert int(statuses[2].headers["Retry-After"]) >= 1


async def test_429_in_flight_task_cap(make_settings: Any, keys: KeyFactory) -> None:
    app = create_app(make_settings(max_in_flight_per_account=2))
    async with (
        app.router.lifespan_context(app),
        httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as c,
    ):
        key = await keys(credits=18)
        results = [await c.post(URL, json=generation(), headers=key.headers) for _ in range(3)]
        credits = (await c.get("/api/v1/account", headers=key.headers)).json()["data"]["credits"]
        assert [r.status_code for r in results[:2]] == [200, 200]
        assert_error(results[2], 429, "rate_limit_error")
        assert "Retry-After" in results[2].headers
        assert credits["held"] == 12
        # Finished tasks give their slots back; a refused submit (402) takes none.
        core = app.state.core
        await build_runner(core.db, core.settings, core.catalog, app.state.components).drain()
        after = [await c.post(URL, json=generation(), headers=key.headers) for _ in range(2)]
        assert after[0].status_code == 200  # the last 6 credits
        assert_error(after[1], 402, "insufficient_credits")
        async with core.db.write() as session:
            await ledger.grant(session, key.account_id, "test", 12, reason="top-up")
        after = [await c.post(URL, json=generation(), headers=key.headers) for _ in range(2)]
        assert after[0].status_code == 200
        assert_error(after[1], 429, "rate_limit_error")


async def test_503_live_key_without_a_configured_provider(
    client: httpx2.AsyncClient, keys: KeyFactory
) -> None:
    key = await keys(mode="live", credits=100)
    error = assert_error(
        await client.post(URL, json=generation(), headers=key.headers), 503, "provider_unavailable"
    )
    assert "wavespeed" in error["message"] and "aio_test_" in error["message"]
    credits = (await client.get("/api/v1/account", headers=key.headers)).json()["data"]["credits"]
    assert credits == {"available": 100, "held": 0, "posted": 100}  # no task, no hold


async def test_500_is_logged_with_a_request_id_and_shows_no_stack_trace(
    make_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(make_settings())

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    transport = httpx2.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx2.AsyncClient(transport=transport, base_url="http://t") as c,
    ):
        response = await c.get("/boom", headers={"X-Request-Id": "req-abc123"})
    error = assert_error(response, 500, "api_error")
    assert "req-abc123" in error["message"] and "secret internals" not in response.text
    assert response.headers["x-request-id"] == "req-abc123"
    assert any("req-abc123" in r.getMessage() and r.exc_info for r in caplog.records)


async def test_unknown_route_and_method_use_the_envelope(client: httpx2.AsyncClient) -> None:
    assert_error(await client.get("/api/v1/nothing-here"), 404, "not_found")
    assert_error(await client.delete("/api/v1/models"), 405, "invalid_request_error")
