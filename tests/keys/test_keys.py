import asyncio
import re
from typing import Any

import httpx2
import pytest
from sqlalchemy import event, select

from mediagate.core.db import Database
from mediagate.core.errors import AuthenticationFailed
from mediagate.core.settings import Settings
from mediagate.keys import service as key_service
from mediagate.keys.models import ApiKey
from tests.factories import KeyFactory, generation


def test_key_format_and_checksum() -> None:
    raw = key_service.generate_secret("test")
    assert re.fullmatch(r"aio_test_[0-9A-Za-z]{36}", raw)
    assert key_service.parse_secret(raw) == "test"
    assert key_service.parse_secret(key_service.generate_secret("live")) == "live"
    # Any single-character change breaks the checksum.
    for i in range(9, len(raw)):
        for c in "0aZ":
            if raw[i] != c:
                assert key_service.parse_secret(raw[:i] + c + raw[i + 1 :]) is None
    assert len({key_service.generate_secret("test") for _ in range(1000)}) == 1000


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "aio_test_",
        "aio_test_short",
        "aio_live_" + "a" * 37,
        "AIO_TEST_" + "a" * 36,
        "aio_test_" + "-" * 36,
    ],
)
def test_malformed_keys_do_not_parse(raw: str) -> None:
    assert key_service.parse_secret(raw) is None


async def test_only_an_hmac_is_stored(keys: KeyFactory, db: Database, settings: Settings) -> None:
    made = await keys()
    async with db.read() as session:
        row = await session.scalar(select(ApiKey).where(ApiKey.id == made.id))
    assert made.raw not in (row.key_hash, row.hint)
    assert row.key_hash == key_service.hash_secret(settings.hmac_secret, made.raw)
    assert row.hint.startswith("aio_test_") and row.hint.endswith(made.raw[-4:])


async def test_a_different_server_secret_does_not_authenticate(
    keys: KeyFactory, db: Database
) -> None:
    made = await keys()
    async with db.read() as session:
        assert (await key_service.authenticate(session, b"test-secret-key", made.raw)).id == made.id
        with pytest.raises(AuthenticationFailed):
            await key_service.authenticate(session, b"another-secret", made.raw)


async def test_bad_checksum_is_rejected_before_the_database(
    db: Database, settings: Settings
) -> None:
    statements: list[str] = []
    event.listen(db.engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    bad = "aio_test_" + "x" * 30 + "000000"
    async with db.read() as session:
        with pytest.raises(AuthenticationFailed):
            await key_service.authenticate(session, settings.hmac_secret, bad)
    assert statements == []


async def test_a_valid_key_costs_one_indexed_lookup(
    keys: KeyFactory, db: Database, settings: Settings
) -> None:
    made = await keys()
    statements: list[str] = []
    event.listen(db.engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    async with db.read() as session:
        await key_service.authenticate(session, settings.hmac_secret, made.raw)
    queries = [q for q in statements if not q.startswith("BEGIN")]
    assert len(queries) == 1 and "WHERE api_keys.key_hash = " in queries[0]


async def test_revoke(keys: KeyFactory, db: Database, settings: Settings) -> None:
    made = await keys()
    async with db.write() as session:
        await key_service.revoke(session, made.id)
    async with db.read() as session:
        with pytest.raises(AuthenticationFailed):
            await key_service.authenticate(session, settings.hmac_secret, made.raw)


async def test_a_verified_key_is_trusted_briefly_then_read_again(
    app: Any, client: httpx2.AsyncClient, keys: KeyFactory, db: Database
) -> None:
    made = await keys()
    statements: list[str] = []
    event.listen(db_engine(app), "before_cursor_execute", lambda *a: statements.append(a[2]))
    assert (await client.get("/api/v1/account", headers=made.headers)).status_code == 200
    looked_up = sum("FROM api_keys" in s for s in statements)
    assert (await client.get("/api/v1/account", headers=made.headers)).status_code == 200
    assert sum("FROM api_keys" in s for s in statements) == looked_up == 1  # cached
    async with db.write() as session:  # revoked by another process
        await key_service.revoke(session, made.id)
    app.state.key_cache.ttl_s = 0.05
    await asyncio.sleep(0.06)
    assert (await client.get("/api/v1/account", headers=made.headers)).status_code == 401


def db_engine(app: Any) -> Any:
    return app.state.core.db.engine.sync_engine


async def test_last_used_is_recorded_without_a_write_per_request(
    app: Any, client: httpx2.AsyncClient, keys: KeyFactory, db: Database
) -> None:
    made = await keys(credits=60)
    touches: list[str] = []
    event.listen(
        app.state.core.db.write_engine.sync_engine,  # write units' statements
        "before_cursor_execute",
        lambda *a: touches.append(a[2]) if a[2].startswith("UPDATE api_keys") else None,
    )
    for _ in range(3):
        answer = await client.post(
            "/api/v1/images/generations", json=generation(), headers=made.headers
        )
        assert answer.status_code == 200
    assert len(touches) == 1  # once a minute per key, not per request
    async with db.read() as session:
        key = await session.get_one(ApiKey, made.id)
    assert key.last_used_at is not None
