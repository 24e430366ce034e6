"""Enqueue the final task object for a client's callback_url; deliver it, signed, with
retries. Delivery goes through the SSRF-safe fetcher like every user-given URL."""

import asyncio
import json
import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mediagate.accounts.models import Account
from mediagate.core.clock import utcnow
from mediagate.core.db import Database, UTCDateTime, table_of
from mediagate.core.ids import new_id
from mediagate.core.prepared import Prepared
from mediagate.media.fetcher import FetchError, SafeFetcher
from mediagate.webhooks import signing
from mediagate.webhooks.models import CallbackDelivery

log = logging.getLogger("mediagate.webhooks")
MAX_ATTEMPTS = 8
LEASE = timedelta(seconds=60)
_deliveries = table_of(CallbackDelivery)
_ANY_DUE = Prepared(
    select(_deliveries.c.id)
    .where(
        _deliveries.c.status == "pending",
        _deliveries.c.next_attempt_at <= bindparam("now", type_=UTCDateTime()),
    )
    .limit(1)
)
"""Asked before taking the write lock: the runner asks after every claim, and almost
always nothing is due."""


def backoff(attempts: int, base_s: float) -> timedelta:
    """base, 6x, 36x ... capped at six hours: 5 s, 30 s, 3 min, 18 min, 1.8 h, 6 h ..."""
    return timedelta(seconds=min(base_s * 6 ** (attempts - 1), 6 * 3600))


def mode_secret(account: Account, mode: str) -> str | None:
    return account.webhook_secret_test if mode == "test" else account.webhook_secret_live


async def account_secret(session: AsyncSession, account_id: str, mode: str) -> str:
    """The whsec_ secret of the account's `mode` (every account has both since migration
    0007; made here should one ever be missing)."""
    account = await session.get_one(Account, account_id)
    secret = mode_secret(account, mode)
    if secret is None:
        secret = signing.new_secret()
        if mode == "test":
            account.webhook_secret_test = secret
        else:
            account.webhook_secret_live = secret
        await session.flush()
    return secret


async def enqueue(
    session: AsyncSession,
    *,
    task_id: str,
    account_id: str,
    mode: str,
    url: str,
    payload: dict[str, Any],
) -> None:
    now = utcnow()
    session.add(
        CallbackDelivery(
            id=new_id("msg", 24),
            task_id=task_id,
            account_id=account_id,
            mode=mode,
            url=url,
            payload=payload,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )
    await session.flush()


class CallbackSender:
    def __init__(self, db: Database, fetcher: SafeFetcher, *, retry_base_s: float = 5.0) -> None:
        self.db = db
        self.fetcher = fetcher
        self.retry_base_s = retry_base_s

    async def deliver_due(self, limit: int = 50) -> int:
        """Send every due callback once (concurrently); how many were attempted."""
        now = utcnow()
        if await _ANY_DUE.one(self.db, {"now": now}) is None:
            return 0
        async with self.db.write() as session:
            due = list(
                await session.scalars(
                    select(CallbackDelivery)
                    .where(
                        CallbackDelivery.status == "pending",
                        CallbackDelivery.next_attempt_at <= now,
                    )
                    .order_by(CallbackDelivery.next_attempt_at)
                    .limit(limit)
                )
            )
            for delivery in due:  # leased: nobody else sends it meanwhile
                delivery.next_attempt_at = now + LEASE
            secrets = {
                (d.account_id, d.mode): await account_secret(session, d.account_id, d.mode)
                for d in due
            }
        await asyncio.gather(*(self._send(d, secrets[d.account_id, d.mode]) for d in due))
        return len(due)

    async def _send(self, delivery: CallbackDelivery, secret: str) -> None:
        body = json.dumps(delivery.payload, separators=(",", ":")).encode()
        timestamp = int(utcnow().timestamp())
        error: str | None = None
        try:
            status = await self.fetcher.post(
                delivery.url, body, signing.headers(secret, delivery.id, timestamp, body)
            )
            if not 200 <= status < 300:
                error = f"the receiver answered HTTP {status}"
        except FetchError as exc:
            error = exc.message
        attempts = delivery.attempts + 1
        values: dict[str, Any] = {"attempts": attempts, "last_error": error}
        if error is None:
            values.update(status="delivered", delivered_at=utcnow())
        elif attempts >= MAX_ATTEMPTS:
            values.update(status="failed")
            log.warning(
                "callback %s for task %s abandoned: %s", delivery.id, delivery.task_id, error
            )
        else:
            values["next_attempt_at"] = utcnow() + backoff(attempts, self.retry_base_s)
        async with self.db.write() as session:
            await session.execute(
                update(CallbackDelivery)
                .where(CallbackDelivery.id == delivery.id)
                .values(values)
                .execution_options(synchronize_session=False)
            )
