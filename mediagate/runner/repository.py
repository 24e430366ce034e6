"""Lease queries on the tasks table. Dialect-specific SQL sits here, one function each."""

import functools
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, String, bindparam, func, literal_column, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from mediagate.core.db import Database, UTCDateTime, table_of
from mediagate.core.prepared import Prepared
from mediagate.tasks.models import Task

_claimable = (Task.status == "in_progress", Task.lease_owner.is_(None))
_tasks = table_of(Task)
# The claim's conditions are those of the partial index ix_tasks_due, with the status
# written into the SQL: as a bound parameter, neither SQLite nor a generic PostgreSQL plan
# can prove the index applies.
_IN_PROGRESS: ColumnElement[str] = literal_column("'in_progress'", String())
_unleased = (_tasks.c.status == _IN_PROGRESS, _tasks.c.lease_owner.is_(None))
_due_now = (*_unleased, _tasks.c.next_run_at <= bindparam("now", type_=UTCDateTime()))
_ANY_DUE = Prepared(select(_tasks.c.id).where(*_due_now).limit(1))


async def any_due(db: Database, now: datetime) -> bool:
    """Whether a claim would find work: one indexed read, no write lock. Runners ask
    before every claim, and are woken far more often than work is due."""
    return await _ANY_DUE.one(db, {"now": now}) is not None


async def claim_due(
    session: AsyncSession, *, worker: str, limit: int, lease_s: float, now: datetime
) -> list[Task]:
    """Lease up to `limit` due tasks to `worker`, bumping each one's fencing `attempt`.

    PostgreSQL: the due rows are picked in a CTE with `FOR UPDATE SKIP LOCKED`, so workers
    claim side by side without waiting, and the LIMIT holds (as a plain `IN (subquery)` it
    does not: the planner may run the subquery more than once). SQLite: the write unit
    holds the database lock (BEGIN IMMEDIATE), so a plain `IN (subquery)` is atomic, and
    about seven times cheaper there than the CTE with UPDATE ... FROM.
    The tasks come back as plain (transient) Task objects: steps only read them.
    """
    claim = _claim(session.get_bind().dialect.name == "postgresql")
    params = {"worker": worker, "now": now, "until": now + timedelta(seconds=lease_s)}
    rows = (await claim.run(session, {**params, "limit": limit})).rows
    return [Task(**dict(zip(_TASK_COLUMNS, row, strict=True))) for row in rows]


_TASK_COLUMNS = [c.key for c in _tasks.c]


@functools.cache
def _claim(postgresql: bool) -> Prepared:
    due = (
        select(_tasks.c.id)
        .where(*_due_now)
        .order_by(_tasks.c.next_run_at)
        .limit(bindparam("limit", type_=Integer()))
    )
    lease = {
        "lease_owner": bindparam("worker", type_=String()),
        "lease_expires_at": bindparam("until", type_=UTCDateTime()),
        "attempt": _tasks.c.attempt + 1,
    }
    if postgresql:
        picked = due.with_for_update(skip_locked=True).cte("due")
        claim = update(_tasks).where(_tasks.c.id == picked.c.id, *_unleased)
    else:
        claim = update(_tasks).where(_tasks.c.id.in_(due.scalar_subquery()), *_unleased)
    return Prepared(claim.values(lease).returning(*_tasks.c))


async def write_back(
    session: AsyncSession,
    task: Task,
    *,
    worker: str,
    values: dict[str, Any],
    release: bool,
) -> bool:
    """Apply `values` only if `worker` still holds the lease it claimed (`task.attempt`).
    False means the lease was lost and nothing changed."""
    if release:
        values = {**values, "lease_owner": None, "lease_expires_at": None}
    fence = {"fence_task": task.id, "fence_owner": worker, "fence_attempt": task.attempt}
    written = await _write_back(tuple(sorted(values))).run(session, {**values, **fence})
    return written.rowcount == 1


@functools.cache
def _write_back(columns: tuple[str, ...]) -> Prepared:
    """The fenced UPDATE setting `columns`, prepared once per set of columns (a handful:
    each step writes the same ones every time)."""
    return Prepared(
        update(_tasks).where(
            _tasks.c.id == bindparam("fence_task"),
            _tasks.c.lease_owner == bindparam("fence_owner"),
            _tasks.c.attempt == bindparam("fence_attempt"),
        ),
        columns=columns,
    )


async def extend_lease(session: AsyncSession, task: Task, *, worker: str, until: datetime) -> bool:
    """The heartbeat of a long step: move the lease's end to `until`, fenced like a
    write-back. False: another worker holds the task now (nothing changed)."""
    written = await _write_back(("lease_expires_at",)).run(
        session,
        {
            "lease_expires_at": until,
            "fence_task": task.id,
            "fence_owner": worker,
            "fence_attempt": task.attempt,
        },
    )
    return written.rowcount == 1


RECONCILER_LOCK = 0x6D6564696167  # "mediag"


async def reconciler_lock(session: AsyncSession) -> bool:
    """One reconciler at a time across all workers. PostgreSQL: a transaction-scoped
    advisory lock (released at commit). SQLite: the write unit already holds the only
    write lock."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    return bool(await session.scalar(select(func.pg_try_advisory_xact_lock(RECONCILER_LOCK))))


async def release_leases(session: AsyncSession, worker: str, now: datetime) -> int:
    """Give back every lease `worker` holds (it is shutting down)."""
    result = await session.execute(
        update(Task)
        .where(Task.lease_owner == worker, Task.status == "in_progress")
        .values(lease_owner=None, lease_expires_at=None, next_run_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def requeue_expired_leases(session: AsyncSession, now: datetime) -> int:
    """Tasks whose worker died or stalled go back to the queue."""
    result = await session.execute(
        update(Task)
        .where(
            Task.status == "in_progress", Task.lease_owner.is_not(None), Task.lease_expires_at < now
        )
        .values(lease_owner=None, lease_expires_at=None, next_run_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def hasten_overdue(session: AsyncSession, now: datetime) -> int:
    """Make tasks past their deadline due now, so a worker fails them promptly."""
    result = await session.execute(
        update(Task)
        .where(*_claimable, Task.deadline_at < now, Task.next_run_at > now)
        .values(next_run_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def count_in_progress(session: AsyncSession) -> int:
    return int(
        await session.scalar(
            select(func.count()).select_from(Task).where(Task.status == "in_progress")
        )
        or 0
    )


async def count_active_on(session: AsyncSession, provider: str, *, besides: str) -> int:
    """Tasks a provider holds (or is being handed) right now."""
    query = (
        select(func.count())
        .select_from(Task)
        .where(
            Task.provider == provider,
            Task.status == "in_progress",
            Task.step.in_(("submitting", "poll", "store", "finalize")),
            Task.id != besides,
        )
    )
    return int(await session.scalar(query) or 0)
