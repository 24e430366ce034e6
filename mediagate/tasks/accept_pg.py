"""Accepting a task on PostgreSQL in ONE statement: slot, hold, task row, idempotency row.

Why (issue 18, an outside profile of a PostgreSQL submit): the four statements of the
SQLite path were four round trips on PostgreSQL, and the first of them (the in-flight slot,
an UPDATE of the account's row) locked that row until COMMIT, across every later round
trip and the Python between them. With one busy account every other submit queued on
that lock (16 of 20 backends waiting, the holder idle in transaction waiting for us). Here
the same four writes are data-modifying CTEs of one statement, so the account row and the
wallet row are locked by the last statement before COMMIT and held for one round trip.

Each step reads the RETURNING of the one before, so it only writes when that one did:
no slot, no hold; no hold, no task. The final SELECT reports which step wrote nothing,
and the caller raises the same errors as the SQLite path (429, 402, the cap's 429/403),
which rolls the unit back. A key with spending caps raises its period rows in the same
statement, after the wallet (the lock order submit has always used: account, wallet, key
spend, so no deadlock with a finishing task); the rows are made to exist first by an
INSERT ... ON CONFLICT DO NOTHING that locks no existing row.

SQLite keeps its four prepared statements (tasks/service.py): there a statement costs
microseconds and the write gate serialises units anyway.
"""

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Insert,
    Select,
    String,
    bindparam,
    exists,
    func,
    insert,
    literal,
    null,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from mediagate.accounts.models import Account
from mediagate.core.db import table_of
from mediagate.keys.models import KeySpend
from mediagate.ledger.models import LedgerAccount, LedgerTransfer
from mediagate.tasks.models import IdempotencyKey, Task

_accounts = table_of(Account)
_wallets = table_of(LedgerAccount)
_transfers = table_of(LedgerTransfer)
_tasks = table_of(Task)
_keys = table_of(IdempotencyKey)
_spend = table_of(KeySpend)

_TASK_VALUES = (
    *("id", "account_id", "key_id", "mode", "model", "type", "params", "price"),
    *("callback_url", "status", "step", "next_run_at", "deadline_at", "attempt"),
    *("step_errors", "polls", "created_at", "updated_at"),
)
"""Task columns given as parameters (hold_id comes from the hold step)."""


def _param(table: Any, column: str, name: str | None = None) -> Any:
    """A parameter typed as its column. Every name has a `p_` prefix: a parameter named
    like a column would also be SET by the UPDATEs (SQLAlchemy's execute rule)."""
    return bindparam(f"p_{name or column}", type_=table.c[column].type)


def _build(with_key: bool, with_caps: bool) -> Select[Any]:
    slot = (
        update(_accounts)
        .where(
            _accounts.c.id == bindparam("p_account"),
            _accounts.c.tasks_in_progress < bindparam("p_limit"),
        )
        .values(tasks_in_progress=_accounts.c.tasks_in_progress + 1)
        .returning(_accounts.c.id)
        .cte("slot")
    )
    available = _wallets.c.credits_posted - _wallets.c.debits_posted - _wallets.c.debits_pending
    price = _param(_tasks, "price")
    wallet = (
        update(_wallets)
        .where(
            _wallets.c.id == bindparam("p_wallet"),
            price <= available,
            exists(select(slot.c.id)),
        )
        .values(debits_pending=_wallets.c.debits_pending + price)
        .returning(_wallets.c.id)
        .cte("wallet")
    )
    hold_source = select(
        literal("hold", _transfers.c.kind.type),
        wallet.c.id,
        _param(_transfers, "credit_account_id", "revenue"),
        price,
        _param(_tasks, "id"),
        _param(_tasks, "created_at"),
    )
    spend: Any = None
    if with_caps:
        # The key's caps (keys/spending.py), one row per period, each raised only if it
        # stays within its cap; the hold is written only if every one of them was.
        caps = (
            func.unnest(
                bindparam("p_periods", type_=ARRAY(String)),
                bindparam("p_caps", type_=ARRAY(BigInteger)),
            )
            .table_valued("period", "cap")
            .render_derived(name="caps")
        )
        spend = (
            update(_spend)
            .where(
                _spend.c.key_id == bindparam("p_spend_key"),
                _spend.c.period == caps.c.period,
                _spend.c.credits + price <= caps.c.cap,
                exists(select(wallet.c.id)),
            )
            .values(credits=_spend.c.credits + price)
            .returning(_spend.c.period)
            .cte("spend")
        )
        hold_source = hold_source.where(
            select(func.count()).select_from(spend).scalar_subquery() == bindparam("p_ncaps")
        )
    hold_columns = ("kind", "debit_account_id", "credit_account_id", "amount", "task_id")
    hold: Any = (
        insert(_transfers)
        .from_select([*hold_columns, "created_at"], hold_source)
        .returning(_transfers.c.id)
        .cte("hold")
    )
    task: Any = (
        insert(_tasks)
        .from_select(
            [*_TASK_VALUES, "hold_id"],
            select(*(_param(_tasks, name) for name in _TASK_VALUES), hold.c.id),
        )
        .returning(_tasks.c.id)
        .cte("task")
    )
    steps: list[Any] = [
        select(func.count()).select_from(slot).scalar_subquery(),
        select(func.count()).select_from(wallet).scalar_subquery(),
        select(hold.c.id).scalar_subquery(),
    ]
    if with_key:
        key: Insert = insert(_keys).from_select(
            ["account_id", "key", "request_hash", "task_id", "created_at", "expires_at"],
            select(
                _param(_keys, "account_id"),
                _param(_keys, "key", "idempotency_key"),
                _param(_keys, "request_hash"),
                task.c.id,
                _param(_tasks, "created_at"),
                _param(_keys, "expires_at"),
            ),
        )
        keyed = key.returning(_keys.c.task_id).cte("keyed")
        steps.append(select(func.count()).select_from(keyed).scalar_subquery())
    else:
        steps.append(select(func.count()).select_from(task).scalar_subquery())
    if spend is not None:
        steps.append(select(func.array_agg(spend.c.period)).scalar_subquery())
    else:
        steps.append(null())
    return select(*steps)


_ACCEPT = {(key, caps): _build(key, caps) for key in (False, True) for caps in (False, True)}


class Accepted(NamedTuple):
    slot: bool
    """The account had a slot under its in-flight limit."""
    wallet: bool
    """The wallet had the credits."""
    hold_id: int | None
    """The hold (and so the task) was written: every cap had room too."""
    spent: frozenset[str]
    """The cap periods that had room."""


async def accept(
    session: AsyncSession,
    *,
    account_id: str,
    limit: int,
    wallet: str,
    revenue: str,
    task: dict[str, Any],
    idempotency: tuple[str, str, datetime] | None,
    spend: tuple[str, dict[str, int]] | None = None,
) -> Accepted:
    """Run the one statement. Nothing is written unless all of it is (the caller raises
    on what it reports, which rolls the unit back). `spend`: the key and its caps by
    period id (their rows must exist: keys/spending.py `ensure_periods`)."""
    params: dict[str, Any] = {f"p_{name}": value for name, value in task.items()}
    params.update(p_account=account_id, p_limit=limit, p_wallet=wallet, p_revenue=revenue)
    if idempotency is not None:
        key, fingerprint, expires_at = idempotency
        params.update(p_idempotency_key=key, p_request_hash=fingerprint, p_expires_at=expires_at)
    if spend is not None:
        key_id, caps = spend
        params.update(
            p_spend_key=key_id,
            p_periods=list(caps),
            p_caps=list(caps.values()),
            p_ncaps=len(caps),
        )
    statement = _ACCEPT[idempotency is not None, spend is not None]
    slot, wallet, hold_id, _written, spent = (await session.execute(statement, params)).one()
    return Accepted(bool(slot), bool(wallet), hold_id, frozenset(spent or ()))
