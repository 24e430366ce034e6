"""What the usage charts show: credits charged per day and tasks per model with their
success rate, for one account and mode over a range of days (bounded, index-backed
queries: the ledger by wallet, the tasks by account and creation time)."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, String, case, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from mediagate.ledger.models import LedgerTransfer
from mediagate.ledger.service import wallet_id
from mediagate.tasks.models import Task

RANGES = (7, 30, 90)
"""The ranges a user can pick, in days ending today (UTC)."""


@dataclass(frozen=True)
class Day:
    day: date
    credits: int


@dataclass(frozen=True)
class ModelUsage:
    model: str
    tasks: int
    completed: int
    failed: int

    @property
    def success_rate(self) -> float | None:
        """Completed out of finished tasks (None while none has finished)."""
        finished = self.completed + self.failed
        return self.completed / finished if finished else None


def day_range(days: int, today: date) -> tuple[datetime, datetime]:
    start = datetime.combine(today - timedelta(days=days - 1), time.min, tzinfo=UTC)
    return start, datetime.combine(today + timedelta(days=1), time.min, tzinfo=UTC)


def _day_of(column: Any, dialect: str) -> ColumnElement[str]:
    """The UTC day of a timestamp as YYYY-MM-DD (SQLite keeps naive UTC text)."""
    if dialect == "sqlite":
        return func.substr(column, 1, 10, type_=String)
    utc = column.op("AT TIME ZONE")(literal_column("'UTC'"))
    return func.to_char(utc, "YYYY-MM-DD", type_=String)


async def credits_per_day(
    session: AsyncSession, account_id: str, mode: str, days: int, today: date
) -> list[Day]:
    """Every day of the range (zero where nothing was charged), oldest first."""
    start, end = day_range(days, today)
    day = _day_of(LedgerTransfer.created_at, session.get_bind().dialect.name)
    query = (
        select(day, func.sum(LedgerTransfer.amount))
        .where(
            LedgerTransfer.debit_account_id == wallet_id(account_id, mode),
            LedgerTransfer.kind == "capture",
            LedgerTransfer.created_at >= start,
            LedgerTransfer.created_at < end,
        )
        .group_by(day)
    )
    charged = {d: int(total) for d, total in await session.execute(query)}
    first = start.date()
    return [
        Day(d, charged.get(d.isoformat(), 0)) for d in (first + timedelta(n) for n in range(days))
    ]


async def tasks_per_model(
    session: AsyncSession, account_id: str, mode: str, days: int, today: date
) -> list[ModelUsage]:
    """Models with at least one task in the range, busiest first."""
    start, end = day_range(days, today)

    def count_of(status: str) -> ColumnElement[int]:
        return func.sum(case((Task.status == status, 1), else_=0))

    query = (
        select(Task.model, func.count(), count_of("completed"), count_of("failed"))
        .where(
            Task.account_id == account_id,
            Task.mode == mode,
            Task.created_at >= start,
            Task.created_at < end,
        )
        .group_by(Task.model)
    )
    rows = [
        ModelUsage(m, int(n), int(ok), int(bad)) for m, n, ok, bad in await session.execute(query)
    ]
    return sorted(rows, key=lambda r: (-r.tasks, r.model))
