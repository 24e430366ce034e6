"""The user's orders and receipts; the operator's orders view: filter, search, CSV,
refunds through Stripe."""

import csv
import io
import re

import httpx2

from mediagate.accounts import users
from mediagate.accounts.passwords import hash_blocking
from mediagate.core.db import Database
from mediagate.ledger import service as ledger
from tests.billing.conftest import balance, buy, customer, deliver, order_of
from tests.billing.fake_stripe import FakeStripe
from tests.web.helpers import PASSWORD, post_form, sign_in


def row(page: str, order_id: str) -> str:
    found = re.search(rf'<tr data-order="{order_id}">(.*?)</tr>', page, re.S)
    assert found, f"no row for {order_id}"
    return found.group(1)


async def test_orders_and_a_printable_receipt_for_their_owner_only(
    client: httpx2.AsyncClient, db: Database, stripe_fake: FakeStripe
) -> None:
    await customer(client, "owner@example.com")
    paid, lapsed = await buy(client, "builder"), await buy(client)
    await deliver(client, stripe_fake.pay(paid))
    await deliver(client, stripe_fake.expire(lapsed))
    paid_order, lapsed_order = await order_of(db, paid), await order_of(db, lapsed)

    listing = (await client.get("/orders")).text
    cells = row(listing, paid_order.id)
    assert "Builder" in cells and "2,200 live" in cells and "20.00 USD" in cells
    assert '<td class="status paid">paid</td>' in cells and "Receipt" in cells
    assert '<td class="status expired">expired</td>' in row(listing, lapsed_order.id)

    receipt = await client.get(f"/orders/{paid_order.id}")
    assert receipt.status_code == 200
    assert 'data-status="paid"' in receipt.text and "20.00 USD" in receipt.text
    assert "owner@example.com" in receipt.text and str(paid_order.payment_intent_id) in receipt.text
    assert (await client.get("/static/app.css")).text.count("@media print") == 1

    pending = await buy(client)
    order = await order_of(db, pending)
    back = (await client.get(f"/orders/{order.id}", params={"checkout": "done"})).text
    assert "Stripe is confirming the payment" in back

    client.cookies.clear()
    await customer(client, "stranger@example.com")
    assert (await client.get(f"/orders/{paid_order.id}")).status_code == 404
    assert paid_order.id not in (await client.get("/orders")).text


async def operator(client: httpx2.AsyncClient, db: Database) -> None:
    async with db.write() as session:
        await users.create_user(session, "ops@example.com", hash_blocking(PASSWORD), admin=True)
    client.cookies.clear()
    await sign_in(client, "ops@example.com")


async def test_operators_filter_search_export_and_refund(
    client: httpx2.AsyncClient, db: Database, stripe_fake: FakeStripe
) -> None:
    await customer(client, "alice@example.com")
    alice = await buy(client, "builder")
    await deliver(client, stripe_fake.pay(alice))
    client.cookies.clear()
    await customer(client, "bob@example.com")
    bob = await buy(client)
    assert (await client.get("/admin/orders")).status_code == 403  # not an operator
    await operator(client, db)
    alice_order, bob_order = await order_of(db, alice), await order_of(db, bob)

    everything = (await client.get("/admin/orders")).text
    assert alice_order.id in everything and bob_order.id in everything
    only_paid = (await client.get("/admin/orders", params={"status": "paid"})).text
    assert alice_order.id in only_paid and bob_order.id not in only_paid
    by_email = (await client.get("/admin/orders", params={"q": "BOB@example.com"})).text
    assert bob_order.id in by_email and alice_order.id not in by_email
    by_id = (await client.get("/admin/orders", params={"q": alice_order.id})).text
    assert alice_order.id in by_id and bob_order.id not in by_id

    export = await client.get("/admin/orders.csv", params={"status": "paid"})
    assert export.headers["content-type"].startswith("text/csv")
    (line,) = csv.DictReader(io.StringIO(export.text))
    assert line["order_id"] == alice_order.id and line["email"] == "alice@example.com"
    assert (line["credits"], line["amount"], line["status"]) == ("2200", "20.00 USD", "paid")

    # A partial refund from the admin page goes to Stripe; its event takes the credits back.
    bad = await post_form(
        client, "/admin/orders", f"/admin/orders/{alice_order.id}/refund", amount="5000",
        reason="too much",
    )  # fmt: skip
    assert bad.status_code == 400 and "from 1 to 2000" in bad.text
    no_reason = await post_form(
        client, "/admin/orders", f"/admin/orders/{alice_order.id}/refund", amount="500", reason=""
    )
    assert no_reason.status_code == 400
    not_paid = await post_form(
        client, "/admin/orders", f"/admin/orders/{bob_order.id}/refund", reason="x"
    )
    assert not_paid.status_code == 400 and "nothing to refund" in not_paid.text
    assert not any(c.startswith("POST /v1/refunds") for c in stripe_fake.calls)

    asked = await post_form(
        client, "/admin/orders", f"/admin/orders/{alice_order.id}/refund", amount="500",
        reason="goodwill",
    )  # fmt: skip
    assert asked.status_code == 303
    assert stripe_fake.calls.count("POST /v1/refunds") == 1
    refund_event = stripe_fake.events[-1]
    assert refund_event["type"] == "charge.refunded"
    assert refund_event["data"]["object"]["amount_refunded"] == 500
    await deliver(client, refund_event)
    refunded = await order_of(db, alice)
    assert refunded.status == "refunded" and refunded.credits_taken_back == 550
    assert (await balance(db, alice_order.account_id)).available == 2200 - 550
    cells = row(
        (await client.get("/admin/orders", params={"q": alice_order.id})).text, alice_order.id
    )
    assert "5.00 USD: 550 credits back" in cells and "goodwill" in cells

    # What could not be taken back (spent already) is shown to the operator.
    async with db.write() as session:
        await ledger.debit(session, alice_order.account_id, "live", 1500, reason="spent")
    await post_form(
        client, "/admin/orders", f"/admin/orders/{alice_order.id}/refund", reason="closing"
    )
    await deliver(client, stripe_fake.events[-1])
    cells = row((await client.get("/admin/orders")).text, alice_order.id)
    assert 'data-unrecovered="1500"' in cells and "1500 not recovered" in cells
    assert (await balance(db, alice_order.account_id)).available == 0


async def test_the_ledger_shows_per_account_numbers_and_what_each_entry_was_for(
    client: httpx2.AsyncClient, db: Database, stripe_fake: FakeStripe
) -> None:
    await customer(client, "first@example.com")  # their welcome grant is entry 1
    client.cookies.clear()
    await customer(client, "second@example.com")
    session_id = await buy(client)
    await deliver(client, stripe_fake.pay(session_id))
    order = await order_of(db, session_id)
    await deliver(client, stripe_fake.refund(str(order.payment_intent_id), 100))
    page = (await client.get("/usage")).text
    rows = re.findall(r'<tr data-kind="(\w+)"><td class="number">(\d+)</td>(.*?)</tr>', page, re.S)
    assert [(kind, number) for kind, number, _ in rows] == [
        ("debit", "3"), ("grant", "2"), ("grant", "1")
    ]  # fmt: skip
    assert f"Refund, order {order.id}: 1.00 USD of 5.00 USD refunded" in rows[0][2]
    assert f"Top-up, order {order.id}: Starter" in rows[1][2]
