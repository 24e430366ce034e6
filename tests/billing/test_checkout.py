"""Stripe Checkout end to end inside the app: the order before the session, webhook
events verified by the `stripe` library, credits granted exactly once (duplicates,
concurrent and out-of-order deliveries, after settlement), forged and stale signatures
refused, refunds taken back never below zero, the reconciler settling what no webhook
told us."""

import asyncio
import json
import time
from datetime import timedelta
from typing import Any

import httpx2
import pytest
from sqlalchemy import func, select, update

from mediagate.billing.models import ExternalEvent, Order
from mediagate.billing.reconciler import BillingReconciler
from mediagate.billing.stripe_client import StripePayments
from mediagate.core.clock import utcnow
from mediagate.core.db import Database
from mediagate.core.settings import Settings
from mediagate.ledger import service as ledger
from mediagate.ledger.models import LedgerTransfer
from tests.billing.conftest import WEBHOOK, balance, buy, customer, deliver, order_of, signed
from tests.billing.fake_stripe import FakeStripe
from tests.web.helpers import post_form


async def grants_for(db: Database, order_id: str) -> int:
    async with db.read() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(LedgerTransfer)
                .where(LedgerTransfer.kind == "grant", LedgerTransfer.reason.contains(order_id))
            )
            or 0
        )


async def stored_events(db: Database) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(ExternalEvent)) or 0)


async def test_buying_makes_the_order_first_then_one_checkout_session(
    client: httpx2.AsyncClient, db: Database, stripe_fake: FakeStripe
) -> None:
    await customer(client)
    session_id = await buy(client, "builder")
    order = await order_of(db, session_id)
    assert order.status == "pending" and order.credits == 2200 and order.amount == 2000
    checkout = stripe_fake.sessions[session_id]
    assert checkout["client_reference_id"] == order.id
    assert checkout["metadata"] == {"order_id": order.id, "account_id": order.account_id}
    assert checkout["amount_total"] == 2000 and checkout["currency"] == "usd"
    assert checkout["customer_email"] == "buyer@example.com"
    assert checkout["success_url"].endswith(f"/orders/{order.id}?checkout=done")
    assert f"mediagate-checkout-{order.id}" in stripe_fake.idempotent
    assert order.checkout_url == checkout["url"]

    # A retried create (same idempotency key) gets the same session back, not a new one.
    payments = StripePayments(
        Settings(stripe_secret_key=stripe_fake.key, stripe_api_base=stripe_fake.base)
    )
    try:
        again = await payments.create_checkout_session(
            {"mode": "payment"}, idempotency_key=f"mediagate-checkout-{order.id}"
        )
    finally:
        await payments.aclose()
    assert again["id"] == session_id and len(stripe_fake.sessions) == 1


async def test_a_paid_event_grants_once_also_redelivered_after_settlement(
    client: httpx2.AsyncClient, db: Database, stripe_fake: FakeStripe
) -> None:
    await customer(client)
    session_id = await buy(client)
    order = await order_of(db, session_id)
    event = stripe_fake.pay(session_id)

    first = await deliver(client, event)
    assert first.status_code == 200 and first.json()["outcome"] == "paid"
    assert (await balance(db, order.account_id)).available == 500
    settled = await order_of(db, session_id)
    assert settled.status == "paid" and settled.paid_event_id == event["id"]
    assert settled.payment_intent_id == stripe_fake.sessions[session_id]["payment_intent"]

    for _ in range(2):  # Stripe redelivers (it never saw our 200, say)
        again = await deliver(client, event)
        assert again.status_code == 200 and again.json()["outcome"].startswith("duplicate")
    # The same payment told by another event id (async_payment_succeeded) grants nothing.
    other = {**event, "id": "evt_other_for_same_session"}
    other["type"] = "checkout.session.async_payment_succeeded"
    assert (await deliver(client, other)).json()["outcome"] == "already paid"
    assert (await balance(db, order.account_id)).available == 500
    assert await grants_for(db, order.id) == 1
    assert (await client.get("/topup")).text.count('data-balance="live">500<') == 1


async def test_five_concurrent_deliveries_grant_once(
    client: httpx2.AsyncClient, db: Database, stripe_fake: FakeStripe
) -> None:
    await customer(client)
    session_id = await buy(client)
    order = await order_of(db, session_id)
    event = stripe_fake.pay(session_id)
    answers = await asyncio.gather(*(deliver(client, event) for _ in range(5)))
    assert [a.status_code for a in answers] == [200] * 5
    outcomes = sorted(a.json()["outcome"] for a in answers)
    assert outcomes.count("paid") == 1, outcomes
    assert (await balance(db, order.account_id)).available == 500
    assert await grants_for(db, order.id) == 1
    assert await stored_events(db) == 1

    # Five different events about the one session, at once: still one grant.
    others = [{**event, "id": f"evt_burst_{i}"} for i in range(5)]
    answers = await asyncio.gather(*(deliver(client, e) for e in others))
    assert all(a.json()["outcome"] == "already paid" for a in answers)
    assert await grants_for(db, order.id) == 1


@pytest.mark.parametrize(
    ("how", "sign_args", "body"),
    [
        ("wrong secret", {"secret": "whsec_someone_else"}, None),
        ("stale timestamp", {"at": int(time.time()) - 301}, None),
        (
            "body changed after signing",
            {},
            b'{"id": "evt_x", "type": "checkout.session.completed"}',
        ),
        ("no signature", None, None),
    ],
)
async def test_forged_or_stale_signatures_are_refused_and_change_nothing(
    client: httpx2.AsyncClient,
    db: Database,
    stripe_fake: FakeStripe,
    how: str,
    sign_args: dict[str, Any] | None,
    body: bytes | None,
) -> None:
    await customer(client)
    session_id = await buy(client)
    event = stripe_fake.pay(session_id)
    if sign_args is None:
        answer = await client.post(WEBHOOK, content=json.dumps(event).encode())
    else:
        request = signed(event, **sign_args)
        if body is not None:
            request["content"] = body
        answer = await client.post(WEBHOOK, **request)
    assert answer.status_code == 400, (how, answer.text)
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert "Stripe-Signature" in answer.json()["message"]
    order = await order_of(db, session_id)
    assert order.status == "pending"
    assert (await balance(db, order.account_id)).available == 0
    assert await stored_events(db) == 0


async def test_a_refund_arriving_before_its_payment_waits_then_applies(
    client: httpx2.AsyncClient, db: Database, stripe_fake: FakeStripe
) -> None:
    await customer(client)
    session_id = await buy(client)
    paid = stripe_fake.pay(session_id)
    refunded = stripe_fake.refund(stripe_fake.sessions[session_id]["payment_intent"])
    first = await deliver(client, refunded)
    assert first.status_code == 200 and "waiting" in first.json()["outcome"]
    assert (await order_of(db, session_id)).status == "pending"
    assert (await deliver(client, paid)).json()["outcome"] == "paid"
    order = await order_of(db, session_id)
    assert order.status == "refunded" and order.amount_refunded == 500
    assert order.credits_taken_back == 500 and order.credits_unrecovered == 0
    assert (await balance(db, order.account_id)).available == 0
    # Each redelivered again: nothing more moves.
    assert (await deliver(client, refunded)).json()["outcome"].startswith("duplicate")
    assert (await deliver(client, paid)).json()["outcome"].startswith("duplicate")
    assert (await balance(db, order.account_id)).available == 0


async def test_expiry_closes_a_pending_order_only(
    client: httpx2.AsyncClient, db: Database, stripe_fake: FakeStripe
) -> None:
    await customer(client)
    lapsed = await buy(client)
    assert (await deliver(client, stripe_fake.expire(lapsed))).json()["outcome"] == "expired"
    assert (await order_of(db, lapsed)).status == "expired"

    paid = await buy(client)
    await deliver(client, stripe_fake.pay(paid))
    late = stripe_fake._event("checkout.session.expired", stripe_fake.sessions[paid])
    assert (await deliver(client, late)).json()["outcome"] == "not pending"
    order = await order_of(db, paid)
    assert order.status == "paid" and (await balance(db, order.account_id)).available == 500


async def spend(db: Database, account_id: str, amount: int) -> None:
    async with db.write() as session:
        await ledger.debit(session, account_id, "live", amount, reason="spent on tasks")


async def test_refunds_take_credits_back_in_proportion_never_below_zero(
    client: httpx2.AsyncClient, db: Database, stripe_fake: FakeStripe
) -> None:
    await customer(client)
    session_id = await buy(client, "builder")  # 2200 credits for 20.00
    await deliver(client, stripe_fake.pay(session_id))
    order = await order_of(db, session_id)
    payment_intent = order.payment_intent_id
    assert payment_intent is not None

    half = stripe_fake.refund(payment_intent, 1000)
    assert "1100 credits taken back" in (await deliver(client, half)).json()["outcome"]
    assert (await balance(db, order.account_id)).available == 1100

    await spend(db, order.account_id, 800)  # 300 left; the rest of the refund is 1100
    rest = stripe_fake.refund(payment_intent)
    outcome = (await deliver(client, rest)).json()["outcome"]
    assert "300 credits taken back" in outcome and "800 already spent" in outcome
    assert (await balance(db, order.account_id)).available == 0
    order = await order_of(db, session_id)
    assert order.status == "refunded" and order.amount_refunded == 2000
    assert (order.credits_taken_back, order.credits_unrecovered) == (1400, 800)
    # The earlier partial refund's event, redelivered late with a new id, adds nothing.
    assert (await deliver(client, {**half, "id": "evt_late_copy"})).json()["outcome"] == (
        "nothing new refunded"
    )
    async with db.read() as session:
        reasons = list(
            await session.scalars(
                select(LedgerTransfer.reason).where(LedgerTransfer.kind == "debit")
            )
        )
    assert any(f"Refund, order {order.id}: 10.00 USD of 20.00 USD" in r for r in reasons if r)


async def test_events_for_the_other_mode_are_stored_and_ignored(
    client: httpx2.AsyncClient, db: Database, stripe_fake: FakeStripe
) -> None:
    await customer(client)
    session_id = await buy(client)
    event = {**stripe_fake.pay(session_id), "livemode": True}  # we hold an sk_test_ key
    answer = await deliver(client, event)
    assert answer.status_code == 200 and answer.json()["outcome"].startswith("ignored")
    order = await order_of(db, session_id)
    assert order.status == "pending" and (await balance(db, order.account_id)).available == 0


async def test_stripe_down_at_checkout_fails_the_order_and_says_so(
    client: httpx2.AsyncClient, db: Database, stripe_fake: FakeStripe
) -> None:
    await customer(client)
    stripe_fake.down = True
    answer = await post_form(client, "/topup", "/topup", package="starter")
    assert answer.status_code == 502 and "Stripe" in answer.text
    async with db.read() as session:
        (order,) = (await session.scalars(select(Order))).all()
    assert order.status == "failed" and order.stripe_session_id is None and order.note
    assert order.id in answer.text
    unknown = await post_form(client, "/topup", "/topup", package="platinum")
    assert unknown.status_code == 400 and "Choose one of the packages" in unknown.text


async def sweep(db: Database, settings: Settings) -> Any:
    payments = StripePayments(settings)
    try:
        return await BillingReconciler(db, payments, settings).sweep()
    finally:
        await payments.aclose()


async def make_due(db: Database) -> None:
    async with db.write() as session:
        await session.execute(
            update(Order)
            .where(Order.status == "pending")
            .values(next_check_at=utcnow() - timedelta(seconds=1))
        )


async def test_the_reconciler_settles_orders_no_webhook_told_us_about(
    client: httpx2.AsyncClient, db: Database, settings: Settings, stripe_fake: FakeStripe
) -> None:
    await customer(client)
    paid, lapsed, open_ = await buy(client), await buy(client), await buy(client)
    stripe_fake.pay(paid)  # no webhook delivered for either
    stripe_fake.expire(lapsed)
    stripe_fake.events.clear()  # and the events list is no help: only the orders are
    # Not due yet (pending for less than billing_pending_check_s): Stripe is not asked.
    assert (await sweep(db, settings)).checked == 0
    await make_due(db)
    done = await sweep(db, settings)
    assert (done.checked, done.settled) == (3, 2)
    account = (await order_of(db, paid)).account_id
    assert (await order_of(db, paid)).status == "paid"
    assert (await order_of(db, paid)).paid_event_id is None  # the reconciler did it
    assert (await order_of(db, lapsed)).status == "expired"
    assert (await order_of(db, open_)).status == "pending"  # still being paid, maybe
    assert (await balance(db, account)).available == 500

    # The webhook arrives after all: nothing more.
    late = stripe_fake._event("checkout.session.completed", stripe_fake.sessions[paid])
    assert (await deliver(client, late)).json()["outcome"] == "already paid"
    await make_due(db)
    assert (await sweep(db, settings)).settled == 0
    assert (await balance(db, account)).available == 500


async def test_the_reconciler_replays_a_refund_whose_webhook_was_lost(
    client: httpx2.AsyncClient, db: Database, settings: Settings, stripe_fake: FakeStripe
) -> None:
    await customer(client)
    session_id = await buy(client)
    await deliver(client, stripe_fake.pay(session_id))
    order = await order_of(db, session_id)
    stripe_fake.refund(str(order.payment_intent_id), 250)  # never delivered
    done = await sweep(db, settings)
    assert done.events_replayed == 1
    order = await order_of(db, session_id)
    assert order.status == "refunded" and order.credits_taken_back == 250
    assert (await balance(db, order.account_id)).available == 250
    assert (await sweep(db, settings)).events_replayed == 0  # stored: handled once


@pytest.fixture
def billing_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    return getattr(request, "param", {})


@pytest.mark.parametrize("billing_overrides", [{"stripe_test_credits_test": True}], indirect=True)
async def test_test_keys_credit_the_test_balance_when_the_operator_says_so(
    client: httpx2.AsyncClient, db: Database, stripe_fake: FakeStripe
) -> None:
    await customer(client)
    session_id = await buy(client)
    await deliver(client, stripe_fake.pay(session_id))
    order = await order_of(db, session_id)
    assert order.mode == "test"
    assert (await balance(db, order.account_id, "live")).available == 0
    assert (await balance(db, order.account_id, "test")).available == 100 + 500  # welcome + 500


async def test_a_delayed_payment_that_fails_fails_the_order(
    client: httpx2.AsyncClient, db: Database, stripe_fake: FakeStripe
) -> None:
    await customer(client)
    session_id = await buy(client)
    checkout = stripe_fake.sessions[session_id]
    checkout.update(status="complete", payment_status="unpaid")  # a bank debit, under way
    waiting = stripe_fake._event("checkout.session.completed", checkout)
    assert (await deliver(client, waiting)).json()["outcome"] == "not paid yet (unpaid)"
    failed = stripe_fake._event("checkout.session.async_payment_failed", checkout)
    assert (await deliver(client, failed)).json()["outcome"] == "failed"
    order = await order_of(db, session_id)
    assert order.status == "failed" and order.note == "The payment failed at Stripe"
    assert (await balance(db, order.account_id)).available == 0


async def test_an_order_left_without_a_session_is_closed_by_the_reconciler(
    client: httpx2.AsyncClient, db: Database, settings: Settings, stripe_fake: FakeStripe
) -> None:
    await customer(client)
    session_id = await buy(client)
    async with db.write() as session:  # as if the process died before recording Stripe's answer
        await session.execute(
            update(Order).values(stripe_session_id=None, created_at=utcnow() - timedelta(hours=2))
        )
    assert (await sweep(db, settings)).abandoned == 1
    async with db.read() as session:
        (order,) = (await session.scalars(select(Order))).all()
    assert order.status == "failed" and "No Checkout Session" in str(order.note)
    assert session_id in stripe_fake.sessions  # never paid: nobody had its page


async def test_a_payment_and_its_refund_delivered_at_once(
    client: httpx2.AsyncClient, db: Database, stripe_fake: FakeStripe
) -> None:
    await customer(client)
    for _ in range(4):
        session_id = await buy(client)
        paid = stripe_fake.pay(session_id)
        refunded = stripe_fake.refund(stripe_fake.sessions[session_id]["payment_intent"])
        answers = await asyncio.gather(
            deliver(client, refunded), deliver(client, paid), deliver(client, refunded)
        )
        assert [a.status_code for a in answers] == [200] * 3, [a.text for a in answers]
        order = await order_of(db, session_id)
        assert (order.status, order.credits_taken_back) == ("refunded", 500)
        assert (await balance(db, order.account_id)).available == 0
