"""Receipts mailed when an order is paid, after the paying transaction commits, once
however the payment is told (redelivered, concurrent, by the reconciler); and the Top up
page waiting for a confirmed address when the operator requires one. Mail is read from a
real SMTP server."""

import asyncio
from datetime import timedelta
from typing import Any

import httpx2
import pytest
from sqlalchemy import update

from mediagate.billing.models import Order
from mediagate.billing.reconciler import BillingReconciler
from mediagate.billing.stripe_client import StripePayments
from mediagate.core.clock import utcnow
from mediagate.core.db import Database
from mediagate.core.settings import Settings
from mediagate.mail.outbox import build_outbox
from tests.billing.conftest import buy, customer, deliver, order_of
from tests.billing.fake_stripe import FakeStripe
from tests.mail.flows import settle_mail
from tests.mail.inbox import Inbox, Received
from tests.web.helpers import open_link, post_form


@pytest.fixture
def mail_overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
def billing_overrides(inbox: Inbox, mail_overrides: dict[str, Any]) -> dict[str, Any]:
    return {**inbox.settings(), "low_balance_check_interval_s": 0, **mail_overrides}


async def signed_up_customer(client: httpx2.AsyncClient, inbox: Inbox) -> Received:
    """A signed-in customer; the confirmation mail of the sign-up."""
    await customer(client)
    mail = await inbox.next()
    assert mail.subject == "Confirm your email address"
    return mail


def assert_receipt(mail: Received, order: Order) -> None:
    assert mail.recipients == ["buyer@example.com"]
    assert mail.subject == f"Receipt for order {order.id}"
    assert "500 (live)" in mail.text and order.package_name in mail.text


async def test_a_paid_order_mails_one_receipt_however_often_the_event_comes(
    client: httpx2.AsyncClient, app: Any, db: Database, inbox: Inbox, stripe_fake: FakeStripe
) -> None:
    await signed_up_customer(client, inbox)
    session_id = await buy(client)
    event = stripe_fake.pay(session_id)
    assert (await deliver(client, event)).json()["outcome"] == "paid"
    order = await order_of(db, session_id)
    assert order.receipt_mailed_at is not None
    mail = await inbox.next()
    assert_receipt(mail, order)
    # Its link is the printable receipt, for the signed-in buyer.
    printable = await client.get(mail.link(f"/orders/{order.id}"))
    assert printable.status_code == 200 and order.id in printable.text

    for _ in range(2):  # Stripe redelivers
        assert (await deliver(client, event)).json()["outcome"].startswith("duplicate")
    other = {**event, "id": "evt_other_for_same_session"}
    assert (await deliver(client, other)).json()["outcome"] == "already paid"
    await settle_mail(app)
    assert inbox.empty()


async def test_five_concurrent_deliveries_mail_one_receipt(
    client: httpx2.AsyncClient, app: Any, db: Database, inbox: Inbox, stripe_fake: FakeStripe
) -> None:
    await signed_up_customer(client, inbox)
    session_id = await buy(client)
    event = stripe_fake.pay(session_id)
    answers = await asyncio.gather(*(deliver(client, event) for _ in range(5)))
    assert [a.json()["outcome"] for a in answers].count("paid") == 1
    assert_receipt(await inbox.next(), await order_of(db, session_id))
    await settle_mail(app)
    assert inbox.empty()


async def test_an_order_the_reconciler_settles_gets_its_receipt_once(
    client: httpx2.AsyncClient,
    app: Any,
    db: Database,
    settings: Settings,
    inbox: Inbox,
    stripe_fake: FakeStripe,
) -> None:
    await signed_up_customer(client, inbox)
    paid = await buy(client)
    stripe_fake.pay(paid)  # no webhook comes
    stripe_fake.events.clear()
    async with db.write() as session:
        await session.execute(update(Order).values(next_check_at=utcnow() - timedelta(seconds=1)))
    payments, outbox = StripePayments(settings), build_outbox(settings)
    try:
        done = await BillingReconciler(db, payments, settings, outbox).sweep()
        assert done.settled == 1
        await outbox.aclose()
    finally:
        await payments.aclose()
    mail = await inbox.next()
    assert_receipt(mail, await order_of(db, paid))
    assert "http://127.0.0.1:8000/orders/" in mail.text  # no request: where `serve` listens
    # The webhook arrives after all: no second receipt.
    late = stripe_fake._event("checkout.session.completed", stripe_fake.sessions[paid])
    assert (await deliver(client, late)).json()["outcome"] == "already paid"
    await settle_mail(app)
    assert inbox.empty()


async def test_an_unpaid_order_mails_nothing(
    client: httpx2.AsyncClient, app: Any, inbox: Inbox, stripe_fake: FakeStripe
) -> None:
    await signed_up_customer(client, inbox)
    session_id = await buy(client)
    expired = stripe_fake.expire(session_id)
    assert (await deliver(client, expired)).json()["outcome"] == "expired"
    await settle_mail(app)
    assert inbox.empty()


@pytest.mark.parametrize("mail_overrides", [{"require_email_verification": True}])
async def test_when_required_buying_waits_for_a_confirmed_address(
    client: httpx2.AsyncClient, db: Database, inbox: Inbox, stripe_fake: FakeStripe
) -> None:
    confirm = await signed_up_customer(client, inbox)
    page = await client.get("/topup")
    assert "Confirm your email address to create live keys and buy credits" in page.text
    refused = await post_form(client, "/topup", "/topup", package="starter")
    assert refused.status_code == 403 and "Confirm your email address first" in refused.text
    assert not stripe_fake.sessions  # no Checkout Session was made

    assert (await open_link(client, confirm.link("/verify-email"))).status_code == 303
    assert "Confirm your email address to" not in (await client.get("/topup")).text
    session_id = await buy(client)
    assert (await order_of(db, session_id)).status == "pending"
