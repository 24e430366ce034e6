"""The gauges read from the shared database at scrape time, in bounded queries: none reads
more than one row of the tasks table, whatever its size.

- tasks in progress: the sum of the per-account counter the transactions that accept and
  finish tasks keep (`accounts.tasks_in_progress`, migration 0006), one row per account;
- queue lag: the first entry of the partial index `ix_tasks_due` (due, unleased tasks),
  with the index's conditions written into the SQL so SQLite and generic PostgreSQL
  plans can prove it applies;
- credits held: the user wallets' pending debits, two rows per account.

Counting finished tasks by state would read every stored task, so it is not a gauge."""

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import String, bindparam, func, literal_column, select
from sqlalchemy.sql.elements import ColumnElement

from mediagate.accounts.models import Account
from mediagate.core.clock import utcnow
from mediagate.core.db import Database, UTCDateTime, table_of
from mediagate.ledger.models import LedgerAccount
from mediagate.tasks.models import Task

_tasks, _accounts, _wallets = table_of(Task), table_of(Account), table_of(LedgerAccount)
_IN_PROGRESS: ColumnElement[str] = literal_column("'in_progress'", String())

IN_PROGRESS = select(func.coalesce(func.sum(_accounts.c.tasks_in_progress), 0))
OLDEST_DUE = (
    select(_tasks.c.next_run_at)
    .where(
        _tasks.c.status == _IN_PROGRESS,
        _tasks.c.lease_owner.is_(None),
        _tasks.c.next_run_at <= bindparam("now", type_=UTCDateTime()),
    )
    .order_by(_tasks.c.next_run_at)
    .limit(1)
)
HELD = (
    select(_wallets.c.mode, func.coalesce(func.sum(_wallets.c.debits_pending), 0))
    .where(_wallets.c.code == literal_column("'user'", String()))
    .group_by(_wallets.c.mode)
)
STATEMENTS = (IN_PROGRESS, OLDEST_DUE, HELD)
"""Every statement a scrape runs (the tests EXPLAIN each one on both databases)."""


@dataclass(frozen=True)
class Gauges:
    in_progress: int
    oldest_due: datetime | None
    """next_run_at of the oldest due task nobody has leased, when it was read."""
    held: dict[str, int] = field(default_factory=dict)
    """Credits held by tasks in progress, by mode."""

    def queue_lag_s(self, now: datetime) -> float:
        return max(0.0, (now - self.oldest_due).total_seconds()) if self.oldest_due else 0.0


async def read_gauges(db: Database) -> Gauges:
    now = utcnow()
    async with db.read() as session:
        in_progress = int(await session.scalar(IN_PROGRESS) or 0)
        oldest: datetime | None = await session.scalar(OLDEST_DUE, {"now": now})
        held = {mode: int(n) for mode, n in (await session.execute(HELD)).all()}
    return Gauges(in_progress, oldest, held)


class CachedGauges:
    """The gauges read at most once per `max_age_s`: scrapes in between (several
    Prometheus servers, a dashboard) get the last reading, and scrapes while a reading is
    under way wait for that one instead of starting their own."""

    def __init__(self, db: Database, max_age_s: float) -> None:
        self.db = db
        self.max_age_s = max_age_s
        self._last: tuple[float, Gauges] | None = None
        self._reading: asyncio.Task[Gauges] | None = None

    async def get(self) -> Gauges:
        if self._last is not None and time.monotonic() - self._last[0] < self.max_age_s:
            return self._last[1]
        if self._reading is None:
            self._reading = asyncio.create_task(self._read())
        reading = self._reading
        return await asyncio.shield(reading)  # a scrape that gives up leaves it running

    async def _read(self) -> Gauges:
        try:
            gauges = await read_gauges(self.db)
            self._last = (time.monotonic(), gauges)
            return gauges
        finally:
            self._reading = None
