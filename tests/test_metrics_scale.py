"""/metrics at a million stored tasks: the scrape's statements read no more than one row of
the tasks table (EXPLAIN on each one, as the database plans and runs it), and they run on
the metrics thread, not on the serving event loop."""

import asyncio
import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx2
import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from mediagate.core.db import sqlite_path
from mediagate.core.settings import Settings
from tests.factories import KeyFactory, generation

STORED = 1_000_000
COLUMNS = [
    *("id", "account_id", "key_id", "mode", "model", "type", "params", "price", "status"),
    *("step", "next_run_at", "deadline_at", "attempt", "step_errors", "polls"),
    *("created_at", "updated_at", "completed_at"),
]
TOUCHES_TASKS = re.compile(r"\btasks\b", re.IGNORECASE)


def finished_rows(account: str, key: str, n: int, naive: bool) -> Iterator[tuple[Any, ...]]:
    """n finished tasks of one account (half completed, half failed), a day old."""
    start = datetime.now(UTC) - timedelta(days=1)
    for i in range(n):
        at = start + timedelta(microseconds=i * 50)
        stamp: Any = at.replace(tzinfo=None).isoformat(" ") if naive else at
        status = "completed" if i % 2 else "failed"
        yield (
            f"task_bulk{i:012d}", account, key, "test", "kling-image-o1", "text-to-image",
            "{}", 3, status, "done", stamp, stamp, 1, 0, 0, stamp, stamp, stamp,
        )  # fmt: skip


async def bulk_load(settings: Settings, account: str, key: str, n: int) -> None:
    url = settings.db_url
    if url.startswith("sqlite"):
        db = sqlite3.connect(sqlite_path(url))
        with db:
            marks = ", ".join("?" * len(COLUMNS))
            db.executemany(
                f"INSERT INTO tasks ({', '.join(COLUMNS)}) VALUES ({marks})",
                finished_rows(account, key, n, naive=True),
            )
        db.execute("ANALYZE")
        db.close()
        return
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.copy_records_to_table(
            "tasks", records=finished_rows(account, key, n, naive=False), columns=COLUMNS
        )
        await conn.execute("ANALYZE tasks")
    finally:
        await conn.close()


@contextmanager
def statements() -> Iterator[list[tuple[str, Any, int]]]:
    """Every statement any engine of this process sends: (SQL, parameters, thread id)."""
    seen: list[tuple[str, Any, int]] = []

    def record(_c: Any, _cursor: Any, sql: str, params: Any, _ctx: Any, _many: bool) -> None:
        seen.append((sql, params, threading.get_ident()))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


async def plan(settings: Settings, sql: str, params: Any) -> tuple[list[str], list[int]]:
    """(what the plan does with tasks, the rows each tasks node returned: PostgreSQL only)."""
    url = settings.db_url
    if url.startswith("sqlite"):
        db = sqlite3.connect(sqlite_path(url))
        try:
            rows = db.execute(f"EXPLAIN QUERY PLAN {sql}", tuple(params or ())).fetchall()
        finally:
            db.close()
        return [detail for *_, detail in rows if TOUCHES_TASKS.search(detail)], []
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        text = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *(params or ()))
    finally:
        await conn.close()
    nodes, stack = [], [json.loads(text)[0]["Plan"]]
    while stack:
        node = stack.pop()
        stack += node.get("Plans", [])
        if node.get("Relation Name") == "tasks":
            nodes.append(node)
    return (
        [f"{n['Node Type']} {n.get('Index Name', '')}".strip() for n in nodes],
        [int(n["Actual Rows"]) for n in nodes],
    )


@pytest.mark.slow
async def test_a_scrape_at_a_million_tasks_reads_at_most_one_row_of_tasks(
    app: Any, client: httpx2.AsyncClient, keys: KeyFactory, settings: Settings
) -> None:
    key = await keys(credits=30)
    queued = await client.post("/api/v1/images/generations", json=generation(), headers=key.headers)
    assert queued.status_code == 200, queued.text
    assert (await client.get("/metrics")).status_code == 200  # the metrics thread connects
    loading = time.monotonic()
    await bulk_load(settings, key.account_id, key.id, STORED)
    print(f"loaded {STORED} tasks in {time.monotonic() - loading:.1f} s")

    await asyncio.sleep(settings.metrics_cache_s)  # the reading before the load is stale
    with statements() as seen:
        started = time.perf_counter()
        response = await client.get("/metrics")
        took_ms = (time.perf_counter() - started) * 1000
    print(f"scrape at {STORED} tasks: {took_ms:.1f} ms")
    assert response.status_code == 200
    assert 'mediagate_tasks{state="in_progress"} 1.0' in response.text

    queries = [(sql, params, t) for sql, params, t in seen if sql.lstrip().upper()[:6] == "SELECT"]
    assert len(queries) == 3, [sql for sql, *_ in queries]
    assert all(t != threading.get_ident() for *_, t in queries)  # on the metrics thread
    on_tasks = [(sql, params) for sql, params, _ in queries if TOUCHES_TASKS.search(sql)]
    assert len(on_tasks) == 1  # the queue lag; the in-progress count reads accounts
    for sql, params in on_tasks:
        steps, rows = await plan(settings, sql, params)
        assert steps and all("ix_tasks_due" in step for step in steps), steps
        assert not any(step.startswith("SCAN") or "Seq Scan" in step for step in steps), steps
        assert all(n <= 1 for n in rows), rows
    assert took_ms < 50  # with a scan of the tasks table it took 500-574 ms (issue 18)
