"""Events from Stripe: stored by (source, event id) before anything is done, then acted
on inside the transaction that marks them handled; a duplicate finds its event handled
and does nothing (the order's own conditional moves guard a race as well)."""

import json
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from mediagate.billing import orders
from mediagate.billing.models import ExternalEvent
from mediagate.core.clock import utcnow
from mediagate.core.db import table_of

log = logging.getLogger("mediagate.billing")
STRIPE = "stripe"


def _ref(event: dict[str, Any]) -> str | None:
    obj = event.get("data", {}).get("object", {})
    if event.get("type", "").startswith("charge."):
        return obj.get("payment_intent")
    return obj.get("id")


async def store(session: AsyncSession, event: dict[str, Any], payload: str) -> None:
    """Keep `event` unless we have it already (insert or nothing, on both databases)."""
    values = {
        "source": STRIPE,
        "external_id": str(event["id"]),
        "type": str(event.get("type", ""))[:100],
        "ref": _ref(event),
        "payload": payload,
        "received_at": utcnow(),
    }
    table = table_of(ExternalEvent)
    if session.get_bind().dialect.name == "postgresql":
        statement: Any = postgresql.insert(table).values(values).on_conflict_do_nothing()
    else:
        statement = sqlite.insert(table).values(values).on_conflict_do_nothing()
    await session.execute(statement)


async def handle(session: AsyncSession, event_id: str, *, livemode: bool) -> str:
    """Act on a stored event once; what happened. `livemode`: what our key is, so a
    test-mode event never credits a live wallet (and the other way round)."""
    stored = await session.scalar(
        select(ExternalEvent)
        .where(ExternalEvent.source == STRIPE, ExternalEvent.external_id == event_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if stored is None:
        return "unknown event"
    if stored.handled_at is not None:
        return f"duplicate ({stored.outcome})"
    event = json.loads(stored.payload)
    if bool(event.get("livemode")) != livemode:
        sent, ours = ("live" if m else "test" for m in (event.get("livemode"), livemode))
        outcome: str | None = f"ignored: a {sent}-mode event, and our key is {ours}"
    else:
        outcome = await _act(session, event)
    if outcome is None:
        stored.outcome = "waiting for the payment to settle"
        return stored.outcome
    stored.handled_at = utcnow()
    stored.outcome = outcome[:300]
    if outcome == "paid":
        await _after_payment(session, event, livemode=livemode)
    return outcome


async def _act(session: AsyncSession, event: dict[str, Any]) -> str | None:
    kind, obj = event.get("type"), event.get("data", {}).get("object", {})
    if kind in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
        return await orders.settle_paid(session, obj, event_id=str(event["id"]))
    if kind == "checkout.session.expired":
        return await orders.expire(session, obj)
    if kind == "checkout.session.async_payment_failed":
        return await orders.payment_failed(session, obj)
    if kind == "charge.refunded":
        return await orders.apply_refund(session, obj)
    return f"ignored: {kind}"


async def _after_payment(session: AsyncSession, event: dict[str, Any], *, livemode: bool) -> None:
    """Refund events that came before the payment they refund are applied now."""
    payment_intent = event.get("data", {}).get("object", {}).get("payment_intent")
    if not payment_intent:
        return
    # A refund being handled right now holds its event row: `handle` waits for it, then
    # applies it. No deadlock: that handler never waits for the order we hold, as it
    # looks the order up by a payment intent only our uncommitted row has.
    waiting = await session.scalars(
        select(ExternalEvent.external_id)
        .where(
            ExternalEvent.source == STRIPE,
            ExternalEvent.ref == payment_intent,
            ExternalEvent.handled_at.is_(None),
        )
        .order_by(ExternalEvent.id)
    )
    for event_id in list(waiting):
        await handle(session, event_id, livemode=livemode)


async def handled_ids(session: AsyncSession, event_ids: list[str]) -> set[str]:
    """Which of these events are handled already (the reconciler skips them)."""
    rows = await session.scalars(
        select(ExternalEvent.external_id).where(
            ExternalEvent.source == STRIPE,
            ExternalEvent.external_id.in_(event_ids),
            ExternalEvent.handled_at.is_not(None),
        )
    )
    return set(rows)


async def unhandled(session: AsyncSession, older_than_s: float, limit: int = 100) -> list[str]:
    """Stored events still waiting (their payment had not settled; a crash in between)."""
    cutoff: datetime = utcnow() - timedelta(seconds=older_than_s)
    rows = await session.scalars(
        select(ExternalEvent.external_id)
        .where(
            ExternalEvent.source == STRIPE,
            ExternalEvent.handled_at.is_(None),
            ExternalEvent.received_at < cutoff,
        )
        .order_by(ExternalEvent.id)
        .limit(limit)
    )
    return list(rows)
