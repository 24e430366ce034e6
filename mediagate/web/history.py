"""What the dashboard lists: ledger entries and tasks of one account, filtered and paged."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from mediagate.ledger.models import LedgerTransfer
from mediagate.ledger.service import wallet_id
from mediagate.tasks.models import Task

PAGE = 25


@dataclass(frozen=True)
class TaskFilter:
    model: str = ""
    status: str = ""
    key_id: str = ""
    since: date | None = None
    until: date | None = None


def _day(d: date, *, end: bool = False) -> datetime:
    moment = datetime.combine(d, time.min, tzinfo=UTC)
    return moment + timedelta(days=1) if end else moment


def tasks_query(account_id: str, f: TaskFilter) -> Select[Task]:
    query = select(Task).where(Task.account_id == account_id)
    if f.model:
        query = query.where(Task.model == f.model)
    if f.status:
        query = query.where(Task.status == f.status)
    if f.key_id:
        query = query.where(Task.key_id == f.key_id)
    if f.since:
        query = query.where(Task.created_at >= _day(f.since))
    if f.until:
        query = query.where(Task.created_at < _day(f.until, end=True))
    return query.order_by(Task.created_at.desc(), Task.id.desc())


async def tasks_page(
    session: AsyncSession, account_id: str, f: TaskFilter, page: int, size: int = PAGE
) -> list[Task]:
    query = tasks_query(account_id, f).offset((page - 1) * size).limit(size + 1)
    return list(await session.scalars(query))


@dataclass(frozen=True)
class Entry:
    number: int
    """The entry's place in its account's ledger, from 1: what the user sees and quotes
    (global row ids would leak everyone else's volume)."""
    transfer: LedgerTransfer


async def entries_page(
    session: AsyncSession, account_id: str, page: int, size: int = PAGE
) -> list[Entry]:
    wallets = [wallet_id(account_id, "live"), wallet_id(account_id, "test")]
    mine = or_(
        LedgerTransfer.debit_account_id.in_(wallets),
        LedgerTransfer.credit_account_id.in_(wallets),
    )
    numbered = (
        select(
            LedgerTransfer.id,
            func.row_number().over(order_by=LedgerTransfer.id).label("number"),
        )
        .where(mine)
        .subquery()
    )
    query = (
        select(LedgerTransfer, numbered.c.number)
        .join(numbered, numbered.c.id == LedgerTransfer.id)
        .order_by(LedgerTransfer.id.desc())
        .offset((page - 1) * size)
        .limit(size + 1)
    )
    return [Entry(int(number), transfer) for transfer, number in (await session.execute(query))]
