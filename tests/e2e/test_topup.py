"""A full top-up through real processes: a `mediagate serve` on loopback, the fake Stripe
on another port. Sign in → Top up → a Checkout Session at the fake → the signed
`checkout.session.completed` delivered to the server: the balance rises by the
package's credits exactly once, also delivered five times at once and once more after
settlement; the reconciler settles an order whose webhook never came; a refund takes
the credits back; forged and stale signatures are refused with 400 and change nothing."""

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.billing.fake_stripe import SECRET_KEY, WEBHOOK_SECRET, FakeStripe, serve_fake_stripe
from tests.e2e.procs import environment, free_port, process, query, wait_for_http, wait_until
from tests.web.helpers import PASSWORD, form_token, page_token

pytestmark = pytest.mark.e2e
PENDING_CHECK_S = 6
"""The reconciler asks Stripe about an order pending this long; the webhook part of the
test is done well before (and the invariants hold even if it were not)."""


def unlisted(fake: FakeStripe, event: dict[str, Any]) -> dict[str, Any]:
    """Keep an event out of Stripe's event list, so only a webhook (or the reconciler's
    question about the order) can bring it; the list replay is tested in process."""
    fake.events.remove(event)
    return event


@pytest.fixture
def shop(tmp_path: Path, database_url: str | None) -> Iterator[dict[str, Any]]:
    with serve_fake_stripe() as fake:
        data = tmp_path / "data"
        env = environment(
            data,
            database_url,
            stripe_secret_key=SECRET_KEY,
            stripe_webhook_secret=WEBHOOK_SECRET,
            stripe_api_base=fake.base,
            billing_reconcile_interval_s=0.5,
            billing_pending_check_s=PENDING_CHECK_S,
        )
        port = free_port()
        log = tmp_path / "serve.log"
        with process(env, "serve", "--port", str(port), log=log) as proc:
            base = f"http://127.0.0.1:{port}"
            wait_for_http(base, proc, log)
            yield {"base": base, "env": env, "fake": fake, "log": log}


def sign_up_with(browser: httpx2.Client, email: str) -> None:
    token = form_token(browser.get("/signup").text)
    answer = browser.post(
        "/signup", data={"email": email, "password": PASSWORD, "csrf_token": token}
    )
    assert answer.status_code == 303, answer.text
    # Sign-up signs no one in (it answers the same for a known email): sign in next.
    token = form_token(browser.get("/login").text)
    answer = browser.post(
        "/login", data={"email": email, "password": PASSWORD, "csrf_token": token}
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/dashboard", answer.text


def live_balance(browser: httpx2.Client) -> int:
    found = re.search(r'data-balance="live">([\d,]+)<', browser.get("/topup").text)
    assert found
    return int(found.group(1).replace(",", ""))  # shown grouped: 2,200


def top_up(browser: httpx2.Client, package: str = "starter") -> str:
    token = page_token(browser.get("/topup").text)
    answer = browser.post("/topup", data={"package": package, "csrf_token": token})
    assert answer.status_code == 303, answer.text
    found = re.search(r"/c/pay/(cs_test_\w+)$", answer.headers["location"])
    assert found, answer.headers["location"]
    return found.group(1)


def order_status(env: dict[str, str], session_id: str) -> str:
    (row,) = query(env, "SELECT status FROM orders WHERE stripe_session_id = ?", session_id)
    return str(row[0])


def test_a_top_up_through_real_processes(shop: dict[str, Any]) -> None:
    base, env, fake = shop["base"], shop["env"], shop["fake"]
    with httpx2.Client(base_url=base, timeout=30) as browser:
        sign_up_with(browser, "e2e-buyer@example.com")
        buy_and_settle(browser, base, env, fake, shop["log"])


def buy_and_settle(
    browser: httpx2.Client, base: str, env: dict[str, str], fake: FakeStripe, log: Path
) -> None:
    webhook = f"{base}/api/v1/billing/stripe/webhook"
    assert live_balance(browser) == 0

    session_id = top_up(browser)
    assert fake.sessions[session_id]["client_reference_id"].startswith("ord_")
    paid = unlisted(fake, fake.pay(session_id))

    # Forged and stale first: refused, nothing stored, nothing granted.
    assert fake.deliver(webhook, paid, secret="whsec_not_ours").status_code == 400
    assert fake.deliver(webhook, paid, at=int(time.time()) - 3600).status_code == 400
    forged = fake.deliver(webhook, paid, tampered=b'{"id": "evt_forged", "type": "x"}')
    assert forged.status_code == 400
    assert query(env, "SELECT count(*) FROM external_events") == [(0,)]
    assert live_balance(browser) == 0 and order_status(env, session_id) == "pending"

    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda _: fake.deliver(webhook, paid), range(5)))
    assert [a.status_code for a in answers] == [200] * 5, [a.text for a in answers]
    outcomes = [a.json()["outcome"] for a in answers]
    assert outcomes.count("paid") == 1, outcomes
    top_ups = "SELECT count(*) FROM ledger_transfers WHERE kind = 'grant' AND reason LIKE 'Top-up%'"
    assert query(env, top_ups) == [(1,)]
    assert live_balance(browser) == 500
    late = fake.deliver(webhook, paid)  # once more, after settlement
    assert late.status_code == 200 and late.json()["outcome"].startswith("duplicate")
    assert live_balance(browser) == 500
    assert order_status(env, session_id) == "paid"

    # A payment whose webhook never comes (and not in Stripe's event list either): the
    # reconciler asks Stripe about the order and settles it.
    unheard = top_up(browser, "builder")
    lost = unlisted(fake, fake.pay(unheard))
    wait_until(lambda: order_status(env, unheard) == "paid", timeout=30, what="the reconciler")
    assert live_balance(browser) == 500 + 2200
    assert any(c == f"GET /v1/checkout/sessions/{unheard}" for c in fake.calls)
    assert "settled by the reconciler" in log.read_text()
    assert fake.deliver(webhook, lost).json()["outcome"] == "already paid"  # late webhook
    assert live_balance(browser) == 2700

    # A refund of the first order takes its credits back.
    payment_intent = fake.sessions[session_id]["payment_intent"]
    refunded = fake.deliver(webhook, unlisted(fake, fake.refund(payment_intent)))
    assert refunded.status_code == 200 and "500 credits taken back" in refunded.json()["outcome"]
    assert live_balance(browser) == 2200
    assert order_status(env, session_id) == "refunded"
    receipt = browser.get("/orders").text
    assert "refunded" in receipt and "5.00 USD refunded" in receipt
