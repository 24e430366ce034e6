"""Concurrent submits: no overdraft, one task per Idempotency-Key, also across replicas."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx2
import pytest
from sqlalchemy import func, select

from mediagate.app import create_app
from mediagate.core.settings import Settings
from mediagate.ledger import service as ledger
from mediagate.ledger.models import LedgerTransfer
from mediagate.tasks.models import Task
from tests.factories import KeyFactory, generation

URL = "/api/v1/images/generations"


@pytest.fixture
async def replicas(settings: Settings) -> AsyncIterator[list[httpx2.AsyncClient]]:
    """Two app instances (two `serve` replicas) on one database."""
    async with AsyncExitStack() as stack:
        clients = []
        for _ in range(2):
            app = create_app(settings)
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx2.ASGITransport(app=app)
            clients.append(
                await stack.enter_async_context(
                    httpx2.AsyncClient(transport=transport, base_url="http://gw")
                )
            )
        yield clients


async def counts(db: Any, account_id: str) -> tuple[int, int]:
    async with db.read() as s:
        tasks = await s.scalar(
            select(func.count()).select_from(Task).where(Task.account_id == account_id)
        )
        holds = await s.scalar(
            select(func.count())
            .select_from(LedgerTransfer)
            .where(
                LedgerTransfer.kind == "hold",
                LedgerTransfer.debit_account_id == f"{account_id}:test",
            )
        )
    return int(tasks or 0), int(holds or 0)


async def test_200_concurrent_submits_against_37_holds(
    replicas: list[httpx2.AsyncClient], keys: KeyFactory, db: Any
) -> None:
    key = await keys(credits=37 * 6)
    responses = await asyncio.gather(
        *(replicas[i % 2].post(URL, json=generation(), headers=key.headers) for i in range(200))
    )
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 37 and statuses.count(402) == 163
    assert await counts(db, key.account_id) == (37, 37)
    async with db.read() as s:
        assert await ledger.balance(s, key.account_id, "test") == ledger.Balance(
            posted=222, held=222
        )


async def test_20_concurrent_requests_with_one_idempotency_key(
    replicas: list[httpx2.AsyncClient], keys: KeyFactory, db: Any
) -> None:
    key = await keys(credits=100)
    headers = {**key.headers, "Idempotency-Key": "charge-once"}
    responses = await asyncio.gather(
        *(
            replicas[i % 2].post(URL, json=generation(prompt="same"), headers=headers)
            for i in range(20)
        )
    )
    ok = [r for r in responses if r.status_code == 200]
    assert all(r.status_code in (200, 409) for r in responses), [r.text for r in responses]
    assert ok and len({r.json()["data"]["task_id"] for r in ok}) == 1
    assert await counts(db, key.account_id) == (1, 1)
    other = await replicas[0].post(URL, json=generation(prompt="different"), headers=headers)
    assert other.status_code == 422
    assert await counts(db, key.account_id) == (1, 1)
