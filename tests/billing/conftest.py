"""Billing tests run against the fake Stripe on loopback, the app's `stripe` client
pointed at it by MEDIAGATE_STRIPE_API_BASE."""

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest
from sqlalchemy import select

from mediagate.billing.models import Order
from mediagate.core.db import Database
from mediagate.core.migrate import upgrade
from mediagate.core.settings import Settings
from mediagate.ledger import service as ledger
from tests.billing.fake_stripe import SECRET_KEY, WEBHOOK_SECRET, FakeStripe, serve_fake_stripe
from tests.billing.fake_stripe import sign as stripe_sign
from tests.web.helpers import post_form, sign_up

WEBHOOK = "/api/v1/billing/stripe/webhook"


@pytest.fixture
def stripe_fake() -> Iterator[FakeStripe]:
    with serve_fake_stripe() as fake:
        yield fake


@pytest.fixture
def billing_overrides() -> dict[str, Any]:
    """What a test changes in the billing settings (override this fixture)."""
    return {}


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings], stripe_fake: FakeStripe, billing_overrides: dict
) -> Settings:
    s = make_settings(
        stripe_secret_key=SECRET_KEY,
        stripe_webhook_secret=WEBHOOK_SECRET,
        stripe_api_base=stripe_fake.base,
        billing_reconcile_interval_s=0,  # the tests run sweeps themselves
        **billing_overrides,
    )
    upgrade(s)
    return s


def signed(event: dict[str, Any], **sign_args: Any) -> dict[str, Any]:
    """Keyword arguments for client.post: the event's bytes and Stripe's signature."""
    body = json.dumps(event).encode()
    return {
        "content": body,
        "headers": {
            "Content-Type": "application/json",
            "Stripe-Signature": stripe_sign(body, **sign_args),
        },
    }


async def deliver(
    client: httpx2.AsyncClient, event: dict[str, Any], **sign_args: Any
) -> httpx2.Response:
    return await client.post(WEBHOOK, **signed(event, **sign_args))


async def buy(client: httpx2.AsyncClient, package: str = "starter") -> str:
    """Press Buy on the Top up page; the Checkout Session it redirected to."""
    answer = await post_form(client, "/topup", "/topup", package=package)
    assert answer.status_code == 303, answer.text
    found = re.search(r"/c/pay/(cs_test_\w+)$", answer.headers["location"])
    assert found, answer.headers["location"]
    return found.group(1)


async def customer(client: httpx2.AsyncClient, email: str = "buyer@example.com") -> None:
    answer = await sign_up(client, email)
    assert answer.status_code == 303, answer.text


async def order_of(db: Database, session_id: str) -> Order:
    async with db.read() as session:
        order = await session.scalar(select(Order).where(Order.stripe_session_id == session_id))
    assert order is not None
    return order


async def balance(db: Database, account_id: str, mode: ledger.Mode = "live") -> ledger.Balance:
    async with db.read() as session:
        found = await ledger.balance(session, account_id, mode)
        assert found == await ledger.recompute_balance(session, account_id, mode)
    return found
