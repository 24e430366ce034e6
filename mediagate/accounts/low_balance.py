"""Low-balance alerts: one mail when a user's live balance (granted minus charged, so a
task's passing hold does not count) falls below the threshold they set; re-armed once it
is back at or above it.

A periodic check in the serving process, beside the billing reconciler, rather than an
after-commit hook on charges: charges are made by runners, which may be processes of
their own (`serve --no-runner` plus workers) with no say over mail, and by several paths
(task captures, operator debits, refunds taken back). Reading the balances catches them
all without touching the ledger's transactions. The price: an alert may come up to
MEDIAGATE_LOW_BALANCE_CHECK_INTERVAL_S late. Each alert is claimed by one conditional
UPDATE, committed before the mail is sent, so replicas checking at once mail it once."""

import asyncio
import logging

from sqlalchemy import and_, exists, select, update

from mediagate.accounts.models import User
from mediagate.core.clock import utcnow
from mediagate.core.db import Database
from mediagate.core.settings import Settings
from mediagate.ledger.models import LedgerAccount
from mediagate.mail.links import background_base
from mediagate.mail.messages import Message, compose
from mediagate.mail.outbox import Outbox

log = logging.getLogger("mediagate.mail")
BATCH = 200
_posted = LedgerAccount.credits_posted - LedgerAccount.debits_posted
_live_wallet = and_(
    LedgerAccount.account_id == User.account_id,
    LedgerAccount.mode == "live",
    LedgerAccount.code == "user",
)


async def check(db: Database, outbox: Outbox, base: str) -> int:
    """Re-arm the alerts of balances back up, mail those newly below; how many mailed."""
    async with db.write() as session:
        await session.execute(
            update(User)
            .where(
                User.low_balance_alerted_at.is_not(None),
                User.low_balance_threshold.is_(None)
                | exists().where(_live_wallet, _posted >= User.low_balance_threshold),
            )
            .values(low_balance_alerted_at=None)
        )
    async with db.read() as session:
        below = (
            await session.execute(
                select(User.id, User.email, User.low_balance_threshold, _posted)
                .join(LedgerAccount, _live_wallet)
                .where(
                    User.low_balance_threshold.is_not(None),
                    User.low_balance_alerted_at.is_(None),
                    _posted < User.low_balance_threshold,
                )
                .limit(BATCH)
            )
        ).all()
    mails: list[Message] = []
    for user_id, email, threshold, posted in below:
        async with db.write() as session:
            claimed = await session.execute(
                update(User)
                .where(User.id == user_id, User.low_balance_alerted_at.is_(None))
                .values(low_balance_alerted_at=utcnow())
            )
        if claimed.rowcount == 1:  # type: ignore[attr-defined]
            mails.append(
                compose(
                    "low_balance",
                    email,
                    available=posted,
                    threshold=threshold,
                    link=f"{base}/topup",
                )
            )
    for mail in mails:
        outbox.post(mail)
    return len(mails)


async def watch(db: Database, outbox: Outbox, settings: Settings) -> None:
    """Check every `low_balance_check_interval_s` until cancelled."""
    base = background_base(settings)
    while True:
        try:
            await check(db, outbox, base)
        except Exception:
            log.exception("low-balance check failed; retrying at the next one")
        await asyncio.sleep(settings.low_balance_check_interval_s)
