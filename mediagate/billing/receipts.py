"""Receipts: mailed once an order is paid, after the transaction that paid it commits
(never inside it: a rolled-back payment mails nothing, and no mail server is waited on
while the order row is locked). The order's receipt is claimed by one conditional UPDATE
in a unit of its own, so a redelivered event, the reconciler and a late webhook racing
each other mail one receipt. At most one: a process that stops between the claim and the
send loses that receipt (the printable one stays on the Orders page)."""

from typing import Any

from sqlalchemy import select, update

from mediagate.accounts.models import User
from mediagate.billing.models import Order
from mediagate.billing.packages import money
from mediagate.core.clock import utcnow
from mediagate.core.db import Database
from mediagate.mail.messages import compose
from mediagate.mail.outbox import Outbox


def paid_order_id(event: dict[str, Any]) -> str:
    """Our order id in a Checkout Session event (client_reference_id, or metadata)."""
    checkout = event.get("data", {}).get("object", {})
    metadata = checkout.get("metadata") or {}
    return str(checkout.get("client_reference_id") or metadata.get("order_id") or "")


async def mail_receipt(db: Database, outbox: Outbox, order_id: str, base: str) -> bool:
    """Mail the receipt of the paid order `order_id` unless it was mailed; whether it was
    mailed now. Call it after the unit that paid the order has committed."""
    async with db.write() as session:
        claimed = await session.execute(
            update(Order)
            .where(
                Order.id == order_id,
                Order.paid_at.is_not(None),
                Order.receipt_mailed_at.is_(None),
            )
            .values(receipt_mailed_at=utcnow())
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return False
        order = await session.get_one(Order, order_id, populate_existing=True)
        email = await session.scalar(select(User.email).where(User.account_id == order.account_id))
    assert order.paid_at is not None
    outbox.post(
        compose(
            "receipt",
            email or order.email,
            order_id=order.id,
            package=order.package_name,
            credits=order.credits,
            mode=order.mode,
            amount=money(order.amount, order.currency),
            paid_at=order.paid_at.strftime("%Y-%m-%d %H:%M UTC"),
            link=f"{base}/orders/{order.id}",
        )
    )
    return True
