"""Spending caps, kept in the submit's transaction: the hold and the key's spend rise
together or not at all, and a released hold gives the spend back."""

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from mediagate.core.errors import Forbidden, RateLimited
from mediagate.keys.limits import KeyLimits
from mediagate.keys.models import KeySpend


class SpendCapReached(RateLimited):
    """This API key has reached its spending cap"""

    type = "spend_limit_exceeded"


def period_key(period: str, moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    if period == "day":
        return f"day:{moment:%Y-%m-%d}"
    if period == "month":
        return f"month:{moment:%Y-%m}"
    return "total"


def period_end(period: str, moment: datetime) -> datetime | None:
    """When the period's spend starts again from zero (None: never)."""
    moment = moment.astimezone(UTC)
    if period == "day":
        return datetime(moment.year, moment.month, moment.day, tzinfo=UTC) + timedelta(days=1)
    if period == "month":
        first = datetime(moment.year, moment.month, 1, tzinfo=UTC)
        return (first + timedelta(days=32)).replace(day=1)
    return None


async def commit_spend(
    session: AsyncSession, key_id: str, limits: KeyLimits | None, credits: int, now: datetime
) -> None:
    """Count `credits` against each of the key's caps, or refuse naming the cap. One
    conditional UPDATE per cap: concurrent submits serialise on the key's row, never
    overshoot it."""
    if limits is None or not limits.caps:
        return
    dialect = session.get_bind().dialect.name
    for period, cap in limits.caps:
        period_id = period_key(period, now)
        await session.execute(_insert_if_missing(dialect, key_id, period_id))
        raised = await session.execute(
            update(KeySpend)
            .where(
                KeySpend.key_id == key_id,
                KeySpend.period == period_id,
                KeySpend.credits + credits <= cap,
            )
            .values(credits=KeySpend.credits + credits)
        )
        if raised.rowcount == 0:  # type: ignore[attr-defined]
            _refuse(period, cap, credits, now)


async def ensure_periods(
    session: AsyncSession, key_id: str, limits: KeyLimits, now: datetime
) -> dict[str, int]:
    """The key's caps by period id, each period's row made to exist (one statement; an
    existing row is left alone and not locked). For PostgreSQL's one-statement accept
    (tasks/accept_pg.py), which raises them."""
    caps = {period_key(period, now): cap for period, cap in limits.caps}
    rows = [{"key_id": key_id, "period": period, "credits": 0} for period in caps]
    await session.execute(postgresql.insert(KeySpend).values(rows).on_conflict_do_nothing())
    return caps


def refuse_first(limits: KeyLimits, spent: frozenset[str], credits: int, now: datetime) -> None:
    """Refuse naming the first cap without room (not in `spent`)."""
    for period, cap in limits.caps:
        if period_key(period, now) not in spent:
            _refuse(period, cap, credits, now)


def _refuse(period: str, cap: int, credits: int, now: datetime) -> None:
    ends = period_end(period, now)
    what = {"day": "daily", "month": "monthly", "total": "total"}[period]
    message = f"This API key's {what} spending cap of {cap} credits does not leave {credits}"
    if ends is None:
        raise Forbidden(message + " (the total cap never resets)", param="cap_total")
    resets = ends.strftime("%Y-%m-%dT%H:%M:%SZ")
    wait_s = (ends - now).total_seconds()
    raise SpendCapReached(f"{message}; it resets at {resets}", retry_after_s=wait_s)


async def give_back(session: AsyncSession, key_id: str, created_at: datetime, credits: int) -> None:
    """A released hold no longer counts against the caps of the periods it was held in."""
    periods = [period_key(p, created_at) for p in ("day", "month", "total")]
    await session.execute(
        update(KeySpend)
        .where(KeySpend.key_id == key_id, KeySpend.period.in_(periods), KeySpend.credits >= credits)
        .values(credits=KeySpend.credits - credits)
    )


def _insert_if_missing(dialect: str, key_id: str, period: str) -> Any:
    values = {"key_id": key_id, "period": period, "credits": 0}
    module: Any = postgresql if dialect == "postgresql" else sqlite
    return module.insert(KeySpend).values(values).on_conflict_do_nothing()
