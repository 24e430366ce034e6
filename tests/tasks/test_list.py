"""GET /api/v1/tasks: own tasks only, newest first, keyset pages stable under inserts."""

import asyncio
from datetime import timedelta
from typing import Any

import httpx2
import pytest
from sqlalchemy import update

from mediagate.core.clock import isoformat, utcnow
from mediagate.core.db import Database
from mediagate.tasks.models import Task
from tests.factories import KeyFactory, MadeKey, generation

URL = "/api/v1/tasks"


async def submit(client: httpx2.AsyncClient, key: MadeKey, **fields: object) -> str:
    response = await client.post(
        "/api/v1/images/generations", json=generation(**fields), headers=key.headers
    )
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["task_id"])


async def page(
    client: httpx2.AsyncClient, key: MadeKey, **params: Any
) -> tuple[list[dict[str, Any]], str | None]:
    response = await client.get(URL, params=params, headers=key.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["code"] == 200
    assert body["message"] == "success"
    return body["data"]["tasks"], body["data"]["next_cursor"]


async def test_pages_under_concurrent_inserts_have_no_duplicates_and_no_gaps(
    client: httpx2.AsyncClient, keys: KeyFactory, db: Database
) -> None:
    key = await keys(credits=1000)
    existing = [await submit(client, key, prompt=f"fox {i}") for i in range(23)]
    # Ten of them share one created_at: the id alone must order them across pages.
    same = utcnow() - timedelta(minutes=1)
    async with db.write() as session:
        await session.execute(
            update(Task).where(Task.id.in_(existing[5:15])).values(created_at=same)
        )

    seen: list[dict[str, Any]] = []
    added: list[str] = []
    paging_done = asyncio.Event()

    async def insert_while_paging() -> None:
        while not paging_done.is_set():
            added.append(await submit(client, key, prompt="a newcomer"))
            await asyncio.sleep(0)

    async def walk() -> None:
        cursor = None
        try:
            while True:
                params = {"limit": 4, **({"cursor": cursor} if cursor else {})}
                tasks, cursor = await page(client, key, **params)
                seen.extend(tasks)
                if cursor is None:
                    return
        finally:
            paging_done.set()

    await asyncio.gather(walk(), insert_while_paging())
    ids = [t["task_id"] for t in seen]
    assert len(ids) == len(set(ids)), "a task was listed twice"
    assert set(existing) <= set(ids), f"missing: {set(existing) - set(ids)}"
    assert added, "nothing was inserted while paging"
    # Newest first (created_at is shown to the second), ties by id descending.
    shown = [t["created_at"] for t in seen]
    assert shown == sorted(shown, reverse=True)
    tied = [i for i in ids if i in existing[5:15]]
    assert tied == sorted(existing[5:15], reverse=True)
    # Each listed task is the same object as GET /api/v1/tasks/{id}.
    one = await client.get(f"/api/v1/tasks/{seen[-1]['task_id']}", headers=key.headers)
    assert one.json()["data"] == seen[-1]


async def test_another_accounts_tasks_are_never_listed(
    client: httpx2.AsyncClient, keys: KeyFactory
) -> None:
    mine, theirs = await keys(account="me"), await keys(account="them")
    my_tasks = {await submit(client, mine) for _ in range(3)}
    for _ in range(4):
        await submit(client, theirs)
    tasks, cursor = await page(client, mine, limit=100)
    assert {t["task_id"] for t in tasks} == my_tasks
    assert cursor is None
    # A cursor made from another account's page does not reveal its tasks either.
    _, their_cursor = await page(client, theirs, limit=1)
    assert their_cursor is not None
    tasks, _ = await page(client, mine, cursor=their_cursor, limit=100)
    assert {t["task_id"] for t in tasks} <= my_tasks


async def test_filters(client: httpx2.AsyncClient, keys: KeyFactory, db: Database) -> None:
    key = await keys(credits=1000)
    old, failed, recent = [await submit(client, key) for _ in range(3)]
    now = utcnow()
    async with db.write() as session:
        await session.execute(
            update(Task).where(Task.id == old).values(created_at=now - timedelta(days=2))
        )
        await session.execute(
            update(Task).where(Task.id == failed).values(status="failed", error_type="x")
        )
    tasks, _ = await page(client, key, status="IN_PROGRESS")
    assert len(tasks) == 2
    assert all(t["status"] == "IN_PROGRESS" for t in tasks)
    tasks, _ = await page(client, key, status="failed")
    assert [t["status"] for t in tasks] == ["failed"]
    tasks, _ = await page(client, key, created_after=isoformat(now - timedelta(days=1)))
    assert len(tasks) == 2
    tasks, _ = await page(client, key, created_before=isoformat(now - timedelta(days=1)))
    assert len(tasks) == 1
    tasks, _ = await page(client, key, model="kling-image-o1", limit=1)
    assert [t["task_id"] for t in tasks] == [recent]
    tasks, _ = await page(client, key, model="another-model")
    assert tasks == []


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("status=done", "status"),
        ("created_after=yesterday", "created_after"),
        ("created_before=2026-11-23T10:00:00", "created_before"),  # no time zone
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=WyJ4Il0", "cursor"),  # base64 JSON, but not a cursor
        ("statuss=completed", "statuss"),
        ("limit=1&limit=2", "limit"),
        ("model=" + "m" * 101, "model"),
    ],
)
async def test_bad_filters_are_400_naming_the_param(
    client: httpx2.AsyncClient, keys: KeyFactory, query: str, param: str
) -> None:
    key = await keys()
    response = await client.get(f"{URL}?{query}", headers=key.headers)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert param in error["message"]
