"""Credits: grant, hold, capture, release, and balances. Services never commit."""

import re
from dataclasses import dataclass
from typing import Literal, NoReturn

from sqlalchemy import bindparam, case, func, insert, select, update
from sqlalchemy.exc import NoResultFound
from sqlalchemy.ext.asyncio import AsyncSession

from mediagate.core.clock import utcnow
from mediagate.core.db import table_of
from mediagate.core.prepared import Prepared
from mediagate.ledger.errors import InsufficientCredits, InvalidAmount, WalletFull
from mediagate.ledger.models import LedgerAccount, LedgerTransfer

Mode = Literal["live", "test"]
MODES: tuple[Mode, ...] = ("live", "test")
MAX_AMOUNT = 10**12
"""The largest single credit amount (grant, debit, hold): beyond any real top-up."""
MAX_WALLET_CREDITS = 10**15
"""The most a wallet may be granted over its life (its credits_posted, which bounds its
other columns): every column and every sum over a wallet stays far inside 64 bits."""
_DIGITS = re.compile(rf"[0-9]{{1,{len(str(MAX_AMOUNT))}}}")


@dataclass(frozen=True)
class Balance:
    posted: int
    held: int

    @property
    def available(self) -> int:
        return self.posted - self.held


# The statements on the paths every task takes (hold, capture, release), built and
# compiled once (core/prepared.py): no unit of work, no per-call statement building.
_accounts = table_of(LedgerAccount)
_transfers = table_of(LedgerTransfer)
_AVAILABLE = _accounts.c.credits_posted - _accounts.c.debits_posted - _accounts.c.debits_pending
_TAKE = {
    column: Prepared(
        update(_accounts)
        .where(_accounts.c.id == bindparam("wallet"), bindparam("amount") <= _AVAILABLE)
        .values({column: _accounts.c[column] + bindparam("amount")})
    )
    for column in ("debits_pending", "debits_posted")
}
_SETTLE = {
    "capture": Prepared(
        update(_accounts)
        .where(_accounts.c.id == bindparam("wallet"))
        .values(
            debits_pending=_accounts.c.debits_pending - bindparam("amount"),
            debits_posted=_accounts.c.debits_posted + bindparam("amount"),
        )
    ),
    "release": Prepared(
        update(_accounts)
        .where(_accounts.c.id == bindparam("wallet"))
        .values(debits_pending=_accounts.c.debits_pending - bindparam("amount"))
    ),
}
_PENDING = Prepared(
    select(
        _transfers.c.kind,
        _transfers.c.debit_account_id,
        _transfers.c.credit_account_id,
        _transfers.c.amount,
        _transfers.c.task_id,
    ).where(_transfers.c.id == bindparam("id"))
)
_RECORD = Prepared(
    insert(_transfers).returning(_transfers.c.id),
    columns=[c.name for c in _transfers.c if c.name != "id"],
)


def wallet_id(account_id: str, mode: str) -> str:
    return f"{account_id}:{mode}"


def grants_id(mode: str) -> str:
    return f"@grants:{mode}"


def revenue_id(mode: str) -> str:
    return f"@revenue:{mode}"


async def open_wallets(session: AsyncSession, account_id: str) -> None:
    """Create the live and test wallets of a new account."""
    session.add_all(
        LedgerAccount(
            id=wallet_id(account_id, mode),
            account_id=account_id,
            mode=mode,
            code="user",
            debits_pending=0,
            debits_posted=0,
            credits_posted=0,
        )
        for mode in MODES
    )
    await session.flush()


async def grant(
    session: AsyncSession, account_id: str, mode: Mode, amount: int, *, reason: str
) -> int:
    """Add `amount` credits to a wallet (from the operator's grants account); the
    transfer's id."""
    check_amount(amount)
    wallet = wallet_id(account_id, mode)
    # Conditional on the room left, checked by the database before the sum is written: a
    # sum can never pass MAX_WALLET_CREDITS (nor overflow into a REAL on SQLite).
    added = await session.execute(
        update(LedgerAccount)
        .where(
            LedgerAccount.id == wallet,
            LedgerAccount.credits_posted <= MAX_WALLET_CREDITS - amount,
        )
        .values(credits_posted=LedgerAccount.credits_posted + amount)
    )
    if added.rowcount != 1:  # type: ignore[attr-defined]
        if await session.scalar(select(_accounts.c.id).where(_accounts.c.id == wallet)) is None:
            raise NoResultFound(f"no wallet {wallet}")
        raise WalletFull(
            f"This grant would take the wallet past {MAX_WALLET_CREDITS:,} credits granted in all",
            param="amount",
        )
    return await _record(session, "grant", grants_id(mode), wallet, amount, reason=reason)


async def debit(
    session: AsyncSession, account_id: str, mode: Mode, amount: int, *, reason: str
) -> int:
    """Take `amount` available credits back from a wallet (operator correction)."""
    check_amount(amount)
    wallet = wallet_id(account_id, mode)
    await _take_available(session, wallet, amount, posted=True)
    return await _record(session, "debit", wallet, grants_id(mode), amount, reason=reason)


async def hold(
    session: AsyncSession, account_id: str, mode: Mode, amount: int, *, task_id: str
) -> int:
    """Reserve `amount` for a task; the hold's id. 402 if it would overdraw the wallet."""
    check_amount(amount)
    wallet = wallet_id(account_id, mode)
    await _take_available(session, wallet, amount, posted=False)
    return await _record(session, "hold", wallet, revenue_id(mode), amount, task_id=task_id)


async def capture(session: AsyncSession, hold_id: int) -> int:
    """Charge a hold (the task succeeded)."""
    return await _resolve(session, hold_id, "capture")


async def release(session: AsyncSession, hold_id: int, *, reason: str | None = None) -> int:
    """Give a hold back (the task failed, timed out or was cancelled: `reason` says which)."""
    return await _resolve(session, hold_id, "release", reason=reason)


async def balance(session: AsyncSession, account_id: str, mode: Mode) -> Balance:
    row = (
        await session.execute(
            select(
                LedgerAccount.credits_posted - LedgerAccount.debits_posted,
                LedgerAccount.debits_pending,
            ).where(LedgerAccount.id == wallet_id(account_id, mode))
        )
    ).one()
    return Balance(posted=int(row[0]), held=int(row[1]))


async def recompute_balance(session: AsyncSession, account_id: str, mode: Mode) -> Balance:
    """The wallet's balance computed from its transfers alone (checks the cache)."""
    wallet = wallet_id(account_id, mode)
    t = LedgerTransfer
    row = (
        await session.execute(
            select(
                func.coalesce(
                    func.sum(
                        case(
                            (t.kind.in_(("grant",)) & (t.credit_account_id == wallet), t.amount),
                            (
                                t.kind.in_(("debit", "capture")) & (t.debit_account_id == wallet),
                                -t.amount,
                            ),
                            else_=0,
                        )
                    ),
                    0,
                ),
                func.coalesce(
                    func.sum(
                        case(
                            (t.kind == "hold", t.amount),
                            (t.kind.in_(("capture", "release")), -t.amount),
                            else_=0,
                        )
                    ).filter(t.debit_account_id == wallet),
                    0,
                ),
            ).where((t.debit_account_id == wallet) | (t.credit_account_id == wallet))
        )
    ).one()
    return Balance(posted=int(row[0]), held=int(row[1]))


def parse_amount(text: str, *, zero: bool = False) -> int:
    """A credit amount typed by a person (admin form, command line): plain digits, 1 to
    MAX_AMOUNT (0 too with `zero`); InvalidAmount naming `amount` otherwise."""
    text = text.strip()
    if not _DIGITS.fullmatch(text):  # no sign, exponent, "_" or 20-digit number reaches int()
        raise InvalidAmount(param="amount")
    amount = int(text)
    if amount == 0 and zero:
        return 0
    check_amount(amount)
    return amount


def check_amount(amount: int) -> None:
    if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount <= MAX_AMOUNT:
        raise InvalidAmount(param="amount")


async def _take_available(session: AsyncSession, wallet: str, amount: int, *, posted: bool) -> None:
    """Move `amount` out of available in one conditional UPDATE: never below zero, also
    under concurrency (the row is locked by the update on PostgreSQL; SQLite write units
    are serialised by BEGIN IMMEDIATE)."""
    statement = _TAKE["debits_posted" if posted else "debits_pending"]
    if (await statement.run(session, {"wallet": wallet, "amount": amount})).rowcount == 1:
        return
    await refuse_hold(session, wallet, amount)


async def refuse_hold(session: AsyncSession, wallet: str, amount: int) -> NoReturn:
    """402 naming what the wallet has (its conditional UPDATE found too little)."""
    current = await session.scalar(select(_AVAILABLE).where(_accounts.c.id == wallet))
    raise InsufficientCredits(
        f"Insufficient credits: {amount} needed, {int(current or 0)} available"
    )


async def _resolve(
    session: AsyncSession, hold_id: int, kind: str, *, reason: str | None = None
) -> int:
    row = (await _PENDING.run(session, {"id": hold_id})).row
    if row is None:
        raise NoResultFound(f"no transfer {hold_id}")
    pending_kind, debit_account, credit_account, amount, task_id = row
    if pending_kind != "hold":
        raise ValueError(f"transfer {hold_id} is not a hold")
    await _SETTLE[kind].run(session, {"wallet": debit_account, "amount": amount})
    return await _record(
        session,
        kind,
        debit_account,
        credit_account,
        amount,
        pending_id=hold_id,
        task_id=task_id,
        reason=reason,
    )


async def _record(
    session: AsyncSession,
    kind: str,
    debit_account: str,
    credit_account: str,
    amount: int,
    *,
    pending_id: int | None = None,
    task_id: str | None = None,
    reason: str | None = None,
) -> int:
    """Write one transfer; its id."""
    values = {
        "kind": kind,
        "debit_account_id": debit_account,
        "credit_account_id": credit_account,
        "amount": amount,
        "pending_id": pending_id,
        "task_id": task_id,
        "reason": reason,
        "created_at": utcnow(),
    }
    row = (await _RECORD.run(session, values)).row
    assert row is not None
    return int(row[0])
