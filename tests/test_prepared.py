"""core/prepared.py: a Prepared statement writes exactly what `session.execute` would,
inside the same unit of work, with SQLAlchemy's errors — on SQLite's inline driver by the
direct path, elsewhere through `session.execute`."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import bindparam, event, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from mediagate.accounts import service as accounts
from mediagate.core.db import Database, table_of
from mediagate.core.prepared import Prepared
from mediagate.tasks.models import Task

tasks = table_of(Task)
COLUMNS = ("id", "account_id", "key_id", "mode", "model", "type", "params", "price")
COLUMNS += ("status", "step", "next_run_at", "deadline_at", "attempt", "step_errors", "polls")
COLUMNS += ("created_at", "updated_at")
INSERT = Prepared(insert(tasks).returning(tasks.c.id), columns=COLUMNS)
BUMP = Prepared(
    update(tasks).where(tasks.c.id == bindparam("task")).values(polls=tasks.c.polls + 1)
)
READ_PLAIN = Prepared(select(tasks.c.status, tasks.c.price).where(tasks.c.id == bindparam("task")))
READ_TIMES = Prepared(select(tasks.c.created_at).where(tasks.c.id == bindparam("task")))


def task_values(task_id: str, account_id: str) -> dict[str, Any]:
    now = datetime(2026, 11, 24, 10, 30, 15, 123456, tzinfo=UTC)
    return {
        "id": task_id,
        "account_id": account_id,
        "key_id": "key_1",
        "mode": "test",
        "model": "kling-image-o1",
        "type": "image-to-image",
        "params": {"prompt": "a fox — 狐", "n": 2, "refs": ["https://x/1.png"]},
        "price": 6,
        "status": "in_progress",
        "step": "prepare",
        "next_run_at": now,
        "deadline_at": now + timedelta(minutes=10),
        "attempt": 0,
        "step_errors": 0,
        "polls": 0,
        "created_at": now,
        "updated_at": now.astimezone(UTC),
    }


async def account(db: Database) -> str:
    async with db.write() as session:
        acc, _ = await accounts.get_or_create(session, "prepared")
    return acc.id


async def stored(db: Database, task_id: str) -> tuple[Any, ...]:
    """The row as the database holds it (no type conversion on the way out)."""
    async with db.read() as session:
        row = (
            await session.execute(
                text("SELECT params, next_run_at, created_at, price FROM tasks WHERE id = :id"),
                {"id": task_id},
            )
        ).one()
    return tuple(row)


async def test_writes_exactly_what_session_execute_writes(db: Database) -> None:
    acc = await account(db)
    async with db.write() as session:
        returned = await INSERT.run(session, task_values("task_prepared", acc))
        await session.execute(insert(tasks), task_values("task_plain", acc))
    assert returned.row == ("task_prepared",) and returned.rowcount in (1, -1)
    assert await stored(db, "task_prepared") == await stored(db, "task_plain")
    async with db.read() as session:
        task = await session.get_one(Task, "task_prepared")
    assert task.params == task_values("x", acc)["params"]
    assert task.created_at == task_values("x", acc)["created_at"]


async def test_values_the_statement_carries_and_rowcounts(db: Database) -> None:
    acc = await account(db)
    async with db.write() as session:
        await INSERT.run(session, task_values("task_1", acc))
        assert (await BUMP.run(session, {"task": "task_1"})).rowcount == 1
        assert (await BUMP.run(session, {"task": "task_1"})).rowcount == 1
        assert (await BUMP.run(session, {"task": "nope"})).rowcount == 0
        assert (await READ_PLAIN.run(session, {"task": "task_1"})).row == ("in_progress", 6)
        assert (await READ_PLAIN.run(session, {"task": "nope"})).row is None
    async with db.read() as session:
        assert (await session.get_one(Task, "task_1")).polls == 2


async def test_a_column_that_needs_converting_comes_back_converted(db: Database) -> None:
    acc = await account(db)
    async with db.write() as session:
        await INSERT.run(session, task_values("task_1", acc))
        row = (await READ_TIMES.run(session, {"task": "task_1"})).row
    assert row == (task_values("x", acc)["created_at"],)  # aware UTC datetime, as the ORM reads it


async def test_part_of_the_unit_of_work_and_errors_are_sqlalchemys(db: Database) -> None:
    acc = await account(db)

    async def fails_after_the_insert() -> None:
        async with db.write() as session:
            await INSERT.run(session, task_values("task_1", acc))
            raise RuntimeError("the request failed after the insert")

    with pytest.raises(RuntimeError):
        await fails_after_the_insert()
    async with db.read() as session:
        assert await session.get(Task, "task_1") is None  # rolled back with its unit
    async with db.write() as session:
        await INSERT.run(session, task_values("task_1", acc))
    with pytest.raises(IntegrityError):
        async with db.write() as session:
            await INSERT.run(session, task_values("task_1", acc))


async def test_direct_and_orm_statements_in_one_unit_commit_or_roll_back_together(
    settings: Any,
) -> None:
    """On the inline driver a write unit's prepared statements run on its own connection
    and ORM work through a session on that same connection. A fresh Database each time:
    SQLAlchemy's first connect rolls back whatever is open, so it must never happen inside
    a unit (it once undid the direct half, and the submit answered 200 without a hold)."""
    db = Database(settings.db_url)
    fresh = Database(settings.db_url)

    async def fails_after_both(acc: str) -> None:
        async with fresh.write() as session:
            await INSERT.run(session, task_values("task_2", acc))
            await session.execute(update(Task).values(price=8))
            raise RuntimeError("the unit fails")

    try:
        acc = await account(db)  # ORM only
        async with fresh.write() as session:
            await INSERT.run(session, task_values("task_1", acc))  # direct first
            await session.execute(update(Task).values(price=7))  # then the ORM
            await BUMP.run(session, {"task": "task_1"})  # direct again
        with pytest.raises(RuntimeError):
            await fails_after_both(acc)
        async with db.read() as session:
            [only] = (await session.scalars(select(Task))).all()
        assert (only.id, only.price, only.polls) == ("task_1", 7, 1)
    finally:
        await fresh.dispose()
        await db.dispose()


async def test_on_the_inline_sqlite_driver_it_skips_sqlalchemys_execute(
    db: Database, request: pytest.FixtureRequest
) -> None:
    """The point of it: no execution context per statement on the inline driver (and the
    ordinary path everywhere else)."""
    acc = await account(db)
    executed: list[str] = []

    def seen(*args: Any) -> None:
        executed.append(args[2])

    event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
    try:
        async with db.write() as session:
            await INSERT.run(session, task_values("task_1", acc))
            await BUMP.run(session, {"task": "task_1"})
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", seen)
    statements = [s for s in executed if "tasks" in s]
    if request.config.getoption("--db") == "sqlite":
        assert statements == []
    else:
        assert len(statements) == 2
    async with db.read() as session:
        assert (await session.get_one(Task, "task_1")).polls == 1


async def test_a_read_alone_sees_each_commit_and_converts_its_columns(db: Database) -> None:
    """`one`: on SQLite the database's reader connection, no session; a fresh snapshot per
    statement, so what a unit of work committed a moment ago is there."""
    acc = await account(db)
    assert await READ_TIMES.one(db, {"task": "task_1"}) is None
    async with db.write() as session:
        await INSERT.run(session, task_values("task_1", acc))
    assert await READ_TIMES.one(db, {"task": "task_1"}) == (task_values("x", acc)["created_at"],)
    async with db.write() as session:
        await BUMP.run(session, {"task": "task_1"})
        await session.execute(update(tasks).values(status="completed"))
    assert await READ_PLAIN.one(db, {"task": "task_1"}) == ("completed", 6)
