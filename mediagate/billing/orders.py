"""Orders: made before the Checkout Session, settled exactly once, refunded as far as the
wallet allows. Services never commit; each function runs inside the caller's unit."""

from datetime import timedelta
from typing import Any, cast

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mediagate.billing.models import Order
from mediagate.billing.packages import Package, money
from mediagate.core.clock import utcnow
from mediagate.core.ids import new_id
from mediagate.ledger import service as ledger
from mediagate.ledger.recovery import take_back_up_to

SETTLEABLE = ("pending", "expired", "failed")
"""Money Stripe took is never lost: a completed payment settles an order even if we had
given up on it (the reconciler saw it expire, the redirect failed)."""


async def create_order(
    session: AsyncSession,
    *,
    account_id: str,
    email: str,
    package: Package,
    mode: ledger.Mode,
    check_after_s: float,
) -> Order:
    now = utcnow()
    order = Order(
        id=new_id("ord", 16),
        account_id=account_id,
        email=email,
        package_id=package.id,
        package_name=package.name,
        credits=package.credits,
        amount=package.price,
        currency=package.currency,
        mode=mode,
        status="pending",
        amount_refunded=0,
        credits_taken_back=0,
        credits_unrecovered=0,
        created_at=now,
        updated_at=now,
        next_check_at=now + timedelta(seconds=check_after_s),
    )
    session.add(order)
    await session.flush()
    return order


def checkout_params(order: Order, base_url: str) -> dict[str, Any]:
    """The Checkout Session for `order` (https://docs.stripe.com/api/checkout/sessions/create):
    our order id in client_reference_id and metadata, one line item at the package price."""
    return {
        "mode": "payment",
        "client_reference_id": order.id,
        "customer_email": order.email,
        "metadata": {"order_id": order.id, "account_id": order.account_id},
        "payment_intent_data": {"metadata": {"order_id": order.id}},
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": order.currency,
                    "unit_amount": order.amount,
                    "product_data": {"name": f"{order.package_name}: {order.credits} credits"},
                },
            }
        ],
        "success_url": f"{base_url}/orders/{order.id}?checkout=done",
        "cancel_url": f"{base_url}/topup?cancelled={order.id}",
    }


def idempotency_key(order_id: str) -> str:
    """One Checkout Session per order, however often the call is retried."""
    return f"mediagate-checkout-{order_id}"


async def attach_session(session: AsyncSession, order_id: str, checkout: dict[str, Any]) -> None:
    await session.execute(
        update(Order)
        .where(Order.id == order_id)
        .values(stripe_session_id=checkout["id"], checkout_url=checkout["url"], updated_at=utcnow())
    )


async def fail_order(session: AsyncSession, order_id: str, note: str) -> None:
    """The Checkout Session could not be made: nothing can have been paid."""
    now = utcnow()
    await session.execute(
        update(Order)
        .where(Order.id == order_id, Order.status == "pending")
        .values(status="failed", note=note[:500], updated_at=now, closed_at=now, next_check_at=None)
    )


async def _locked(session: AsyncSession, *condition: Any) -> Order | None:
    return await session.scalar(
        select(Order).where(*condition).with_for_update().execution_options(populate_existing=True)
    )


def _order_id(checkout: dict[str, Any]) -> str:
    metadata = checkout.get("metadata") or {}
    return str(checkout.get("client_reference_id") or metadata.get("order_id") or "")


async def settle_paid(
    session: AsyncSession, checkout: dict[str, Any], *, event_id: str | None
) -> str:
    """Grant the order's credits if `checkout` (a Checkout Session) is paid and the order
    was not settled yet, in this unit; what happened, in words."""
    order = await _locked(session, Order.id == _order_id(checkout))
    if order is None:
        return "no such order"
    if order.stripe_session_id not in (None, checkout.get("id")):
        return f"session {checkout.get('id')} is not this order's"
    if checkout.get("payment_status") != "paid":
        return f"not paid yet ({checkout.get('payment_status')})"
    if order.status not in SETTLEABLE:
        return f"already {order.status}"
    if checkout.get("amount_total") != order.amount or checkout.get("currency") != order.currency:
        note = (
            f"Stripe says {checkout.get('amount_total')} {checkout.get('currency')} was paid,"
            f" the order is for {order.amount} {order.currency}: check it at Stripe"
        )
        await session.execute(update(Order).where(Order.id == order.id).values(note=note))
        return "amount mismatch; left for the operator"
    now = utcnow()
    moved = await session.execute(
        update(Order)
        .where(Order.id == order.id, Order.status.in_(SETTLEABLE))
        .values(
            status="paid",
            stripe_session_id=checkout["id"],
            payment_intent_id=checkout.get("payment_intent"),
            paid_event_id=event_id,
            paid_at=now,
            updated_at=now,
            closed_at=None,
            next_check_at=None,
        )
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        return "already settled"
    transfer = await ledger.grant(
        session,
        order.account_id,
        cast(ledger.Mode, order.mode),
        order.credits,
        reason=f"Top-up, order {order.id}: {order.package_name}",
    )
    await session.execute(
        update(Order).where(Order.id == order.id).values(grant_transfer_id=transfer)
    )
    return "paid"


async def expire(session: AsyncSession, checkout: dict[str, Any]) -> str:
    now = utcnow()
    moved = await session.execute(
        update(Order)
        .where(
            Order.id == _order_id(checkout),
            Order.status == "pending",
            or_(Order.stripe_session_id.is_(None), Order.stripe_session_id == checkout.get("id")),
        )
        .values(status="expired", updated_at=now, closed_at=now, next_check_at=None)
    )
    return "expired" if moved.rowcount == 1 else "not pending"  # type: ignore[attr-defined]


async def payment_failed(session: AsyncSession, checkout: dict[str, Any]) -> str:
    """A delayed payment method (a bank debit) failed after the session completed."""
    now = utcnow()
    moved = await session.execute(
        update(Order)
        .where(
            Order.id == _order_id(checkout),
            Order.status == "pending",
            Order.stripe_session_id == checkout.get("id"),
        )
        .values(
            status="failed",
            note="The payment failed at Stripe",
            updated_at=now,
            closed_at=now,
            next_check_at=None,
        )
    )
    return "failed" if moved.rowcount == 1 else "not pending"  # type: ignore[attr-defined]


async def abandon_sessionless(session: AsyncSession, older_than_s: float) -> int:
    """Orders left without a Checkout Session (the process stopped between making the
    order and recording Stripe's answer): no one was given a payment page, so nothing
    can have been paid for them. Failed, with a note; how many."""
    now = utcnow()
    moved = await session.execute(
        update(Order)
        .where(
            Order.status == "pending",
            Order.stripe_session_id.is_(None),
            Order.created_at < now - timedelta(seconds=older_than_s),
        )
        .values(
            status="failed",
            note="No Checkout Session was recorded for this order",
            updated_at=now,
            closed_at=now,
            next_check_at=None,
        )
    )
    return int(moved.rowcount)  # type: ignore[attr-defined]


async def apply_refund(session: AsyncSession, charge: dict[str, Any]) -> str | None:
    """Take back the credits of what Stripe says is refunded on `charge` (a Charge; its
    `amount_refunded` is the running total, so an older event arriving late adds nothing).
    None: the order is not settled yet (the refund waits for the payment)."""
    payment_intent = charge.get("payment_intent")
    if not payment_intent:
        return "no payment intent"
    order = await _locked(session, Order.payment_intent_id == payment_intent)
    if order is None or order.status not in ("paid", "refunded"):
        return None
    refunded, total = int(charge.get("amount_refunded") or 0), int(charge.get("amount") or 0)
    if refunded <= order.amount_refunded or total <= 0:
        return "nothing new refunded"
    due = min(order.credits, order.credits * refunded // total) - (
        order.credits_taken_back + order.credits_unrecovered
    )
    reason = (
        f"Refund, order {order.id}: {money(refunded, order.currency)} of"
        f" {money(total, order.currency)} refunded" + (f" ({order.note})" if order.note else "")
    )
    taken = await take_back_up_to(
        session, order.account_id, cast(ledger.Mode, order.mode), due, reason=reason
    )
    now = utcnow()
    await session.execute(
        update(Order)
        .where(Order.id == order.id)
        .values(
            status="refunded",
            amount_refunded=refunded,
            credits_taken_back=Order.credits_taken_back + taken,
            credits_unrecovered=Order.credits_unrecovered + max(0, due - taken),
            updated_at=now,
            closed_at=now,
        )
    )
    short = max(0, due - taken)
    return f"refunded: {taken} credits taken back" + (f", {short} already spent" if short else "")


async def due_for_check(session: AsyncSession, limit: int = 50) -> list[Order]:
    """Pending orders with a Checkout Session whose check is due."""
    rows = await session.scalars(
        select(Order)
        .where(
            Order.status == "pending",
            Order.stripe_session_id.is_not(None),
            Order.next_check_at <= utcnow(),
        )
        .order_by(Order.next_check_at)
        .limit(limit)
    )
    return list(rows)


async def claim_check(session: AsyncSession, order: Order, again_in_s: float) -> bool:
    """Take the order's next check (fenced on the time we saw), so one process asks."""
    moved = await session.execute(
        update(Order)
        .where(Order.id == order.id, Order.next_check_at == order.next_check_at)
        .values(next_check_at=utcnow() + timedelta(seconds=again_in_s))
    )
    return bool(moved.rowcount == 1)  # type: ignore[attr-defined]


async def note(session: AsyncSession, order_id: str, text: str) -> None:
    """An operator's note on the order (shown with it; quoted in a later refund entry)."""
    await session.execute(
        update(Order).where(Order.id == order_id).values(note=text[:500], updated_at=utcnow())
    )
