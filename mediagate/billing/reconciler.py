"""Settles what a webhook missed: asks Stripe about orders pending for a while, applies
stored events that were waiting, and replays recent events Stripe may have failed to
deliver. Every path goes through the same exactly-once functions as the webhook, so a
reconciler and a late webhook racing each other grant once."""

import asyncio
import json
import logging
import time
from dataclasses import dataclass

from mediagate.billing import events, orders, receipts
from mediagate.billing.errors import StripeUnavailable
from mediagate.billing.stripe_client import WEBHOOK_EVENTS, Payments
from mediagate.core.db import Database
from mediagate.core.settings import Settings
from mediagate.mail.links import background_base
from mediagate.mail.outbox import Outbox

log = logging.getLogger("mediagate.billing")
WAITING_EVENT_RETRY_S = 30.0


@dataclass
class Sweep:
    checked: int = 0
    settled: int = 0
    events_replayed: int = 0
    abandoned: int = 0


class BillingReconciler:
    def __init__(
        self, db: Database, payments: Payments, settings: Settings, outbox: Outbox | None = None
    ) -> None:
        self.db = db
        self.payments = payments
        self.settings = settings
        self.outbox = outbox
        """Where receipts of the orders it settles go (None: none are mailed)."""
        self.livemode = not payments.test_key

    async def run(self) -> None:
        """Sweep every `billing_reconcile_interval_s` until cancelled."""
        while True:
            try:
                done = await self.sweep()
                if done.settled or done.events_replayed:
                    log.warning("billing reconciler: %s", done)
            except StripeUnavailable as exc:
                log.warning("billing reconciler: %s; next sweep will retry", exc.message)
            except Exception:
                log.exception("billing reconciler failed; retrying at the next sweep")
            await asyncio.sleep(self.settings.billing_reconcile_interval_s)

    async def sweep(self) -> Sweep:
        done = Sweep()
        again = self.settings.billing_pending_check_s
        async with self.db.write() as session:
            # Stripe's own calls are retried for far less than this, with the same key.
            done.abandoned = await orders.abandon_sessionless(session, max(again, 3600))
        async with self.db.read() as session:
            due = await orders.due_for_check(session)
        for order in due:
            async with self.db.write() as session:
                if not await orders.claim_check(session, order, again):
                    continue  # another process is asking about it
            assert order.stripe_session_id is not None
            checkout = await self.payments.retrieve_session(order.stripe_session_id)
            done.checked += 1
            async with self.db.write() as session:
                if checkout.get("status") == "complete":  # paid, or a delayed method pending
                    outcome = await orders.settle_paid(session, checkout, event_id=None)
                elif checkout.get("status") == "expired":
                    outcome = await orders.expire(session, checkout)
                else:
                    continue  # still open: the customer may be paying now
            if outcome == "paid":
                await self._receipt(order.id)
            if outcome in ("paid", "expired"):
                done.settled += 1
                log.warning("order %s settled by the reconciler: %s", order.id, outcome)
        async with self.db.read() as session:
            waiting = await events.unhandled(session, WAITING_EVENT_RETRY_S)
        for event_id in waiting:
            async with self.db.write() as session:
                await events.handle(session, event_id, livemode=self.livemode)
        lookback = 2 * again + self.settings.billing_reconcile_interval_s
        recent = await self.payments.list_events(WEBHOOK_EVENTS, int(time.time() - lookback))
        async with self.db.read() as session:
            seen = await events.handled_ids(session, [str(e["id"]) for e in recent])
        for event in reversed(recent):  # oldest first, as they happened
            if event["id"] in seen:
                continue
            async with self.db.write() as session:
                await events.store(session, event, json.dumps(event))
            async with self.db.write() as session:
                outcome = await events.handle(session, str(event["id"]), livemode=self.livemode)
            if not outcome.startswith(("duplicate", "ignored")):
                done.events_replayed += 1
            if outcome == "paid":
                await self._receipt(receipts.paid_order_id(event))
        return done

    async def _receipt(self, order_id: str) -> None:
        """After the settling unit committed (billing/receipts.py)."""
        if self.outbox is not None:
            base = background_base(self.settings)
            await receipts.mail_receipt(self.db, self.outbox, order_id, base)
