"""Taking credits back as far as the wallet allows (refunds): never below zero."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mediagate.ledger import service as ledger
from mediagate.ledger.models import LedgerAccount


async def take_back_up_to(
    session: AsyncSession, account_id: str, mode: ledger.Mode, amount: int, *, reason: str
) -> int:
    """Debit min(`amount`, available) with `reason`; what was taken. The wallet row is
    locked first (PostgreSQL; SQLite write units are serialised), so a hold taken at the
    same moment cannot make the debit overdraw."""
    if amount <= 0:
        return 0
    wallet = LedgerAccount
    row = (
        await session.execute(
            select(wallet.credits_posted - wallet.debits_posted - wallet.debits_pending)
            .where(wallet.id == ledger.wallet_id(account_id, mode))
            .with_for_update()
        )
    ).one()
    taken = max(0, min(amount, int(row[0])))
    if taken:
        await ledger.debit(session, account_id, mode, taken, reason=reason)
    return taken
