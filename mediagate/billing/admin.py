"""The operator's side: every order (filter, search by email or order id, CSV), refunds
through Stripe, and redemption-code batches."""

import csv
import io
from datetime import UTC, datetime, time
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import Select, or_, select

from mediagate.billing import codes, orders
from mediagate.billing.errors import NotRefundable, StripeUnavailable, UnknownOrder
from mediagate.billing.models import ORDER_STATUSES, Order
from mediagate.billing.packages import money
from mediagate.billing.state import billing_state
from mediagate.core.errors import InvalidRequest
from mediagate.core.state import core_state
from mediagate.web.render import csv_download, page, redirect
from mediagate.web.security import admin, check_csrf, form
from mediagate.web.sessions import Viewer

router = APIRouter(prefix="/admin", include_in_schema=False)
Admin = Annotated[Viewer, Depends(admin)]
PAGE = 200


def _orders_query(request: Request) -> Select[Order]:
    status, q = request.query_params.get("status", ""), request.query_params.get("q", "").strip()
    query = select(Order)
    if status in ORDER_STATUSES:
        query = query.where(Order.status == status)
    if q:
        query = query.where(or_(Order.id == q, Order.email == q.lower()))
    return query.order_by(Order.created_at.desc())


async def _orders_page(
    request: Request, who: Viewer, status: int = 200, *, error: str | None = None
) -> Response:
    async with core_state(request).db.read() as session:
        rows = list(await session.scalars(_orders_query(request).limit(PAGE)))
    return page(
        request,
        "admin_orders.html",
        who,
        status,
        orders=rows,
        statuses=ORDER_STATUSES,
        chosen=request.query_params.get("status", ""),
        q=request.query_params.get("q", ""),
        query=request.url.query,
        error=error,
        money=money,
    )


@router.get("/orders")
async def orders_page(request: Request, who: Admin) -> Response:
    return await _orders_page(request, who)


@router.get("/orders.csv")
async def orders_csv(request: Request, who: Admin) -> Response:
    async with core_state(request).db.read() as session:
        rows = list(await session.scalars(_orders_query(request)))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "order_id", "created_at", "email", "account_id", "package", "credits", "amount",
            "currency", "mode", "status", "paid_at", "amount_refunded", "credits_taken_back",
            "credits_unrecovered", "stripe_session", "payment_intent",
        ]
    )  # fmt: skip
    for o in rows:
        writer.writerow(
            [
                o.id, o.created_at.isoformat(), o.email, o.account_id, o.package_name, o.credits,
                money(o.amount, o.currency), o.currency, o.mode, o.status,
                o.paid_at.isoformat() if o.paid_at else "", money(o.amount_refunded, o.currency),
                o.credits_taken_back, o.credits_unrecovered, o.stripe_session_id or "",
                o.payment_intent_id or "",
            ]
        )  # fmt: skip
    return csv_download(out.getvalue(), "orders.csv")


@router.post("/orders/{order_id}/refund")
async def refund(request: Request, order_id: str, who: Admin) -> Response:
    """Ask Stripe to refund (all, or `amount` minor units); the credits come back when
    Stripe's `charge.refunded` arrives (webhook, or the reconciler's replay)."""
    fields = await form(request)
    check_csrf(request, who.csrf_token, fields)
    reason = fields.get("reason", "").strip()[:200]
    core = core_state(request)
    try:
        payments = billing_state(request).require_payments()
        async with core.db.read() as session:
            order = await session.get(Order, order_id)
        if order is None:
            raise UnknownOrder()
        if order.status not in ("paid", "refunded") or not order.payment_intent_id:
            raise NotRefundable(f"Order {order.id} is {order.status}: nothing to refund")
        left = order.amount - order.amount_refunded
        raw = fields.get("amount", "").strip()
        amount = int(raw) if raw.isdigit() else (left if not raw else -1)
        if not 0 < amount <= left or not reason:
            raise InvalidRequest(
                f"Give a reason and an amount from 1 to {left} (minor units), or leave it empty"
            )
        async with core.db.write() as session:  # before Stripe's event can arrive
            await orders.note(session, order.id, f"refund asked by {who.user.email}: {reason}")
        await payments.create_refund(
            {
                "payment_intent": order.payment_intent_id,
                "amount": amount,
                "metadata": {"order_id": order.id, "reason": reason, "by": who.user.email},
            },
            idempotency_key=f"mediagate-refund-{order.id}-{order.amount_refunded}-{amount}",
        )
    except (InvalidRequest, UnknownOrder, StripeUnavailable) as exc:
        return await _orders_page(request, who, exc.status, error=exc.message)
    return redirect(f"/admin/orders?q={order.id}")


async def _codes_page(
    request: Request,
    who: Viewer,
    status: int = 200,
    *,
    error: str | None = None,
    created: list[str] | None = None,
) -> Response:
    async with core_state(request).db.read() as session:
        rows = await codes.batches(session)
    return page(
        request, "admin_codes.html", who, status, batches=rows, created=created, error=error
    )


@router.get("/codes")
async def codes_page(request: Request, who: Admin) -> Response:
    return await _codes_page(request, who)


@router.post("/codes")
async def create_codes(request: Request, who: Admin) -> Response:
    fields = await form(request)
    check_csrf(request, who.csrf_token, fields)
    core = core_state(request)
    try:
        credits, count, uses = (
            _whole(fields, "credits"),
            _whole(fields, "count"),
            _whole(fields, "uses", 1),
        )
        expires = _day_end(fields.get("expires", ""))
        async with core.db.write() as session:
            _, made = await codes.create_batch(
                session,
                core.settings.hmac_secret,
                credits=credits,
                count=count,
                uses=uses,
                expires_at=expires,
                test=fields.get("test") == "on",
                note=fields.get("note", "").strip(),
                created_by=who.user.email,
            )
    except InvalidRequest as exc:
        return await _codes_page(request, who, 400, error=exc.message)
    return await _codes_page(request, who, created=made)


def _whole(fields: dict[str, str], name: str, default: int | None = None) -> int:
    raw = fields.get(name, "").strip()
    if not raw and default is not None:
        return default
    if not raw.isdigit():
        raise InvalidRequest(f"{name}: a whole number", param=name)
    return int(raw)


def _day_end(raw: str) -> datetime | None:
    """An expiry date (YYYY-MM-DD): the code works until the end of that day, UTC."""
    if not raw.strip():
        return None
    try:
        day = datetime.strptime(raw.strip(), "%Y-%m-%d").date()
    except ValueError:
        raise InvalidRequest("expires: a date, YYYY-MM-DD", param="expires") from None
    return datetime.combine(day, time.max, tzinfo=UTC)
