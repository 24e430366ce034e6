"""Buying and redeeming credits: the Top up page (packages → Stripe Checkout), the
user's orders and receipts, code redemption (page and API), and Stripe's webhook."""

from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy import select

from mediagate.accounts import users
from mediagate.billing import events, orders, receipts
from mediagate.billing.errors import CodeNotRedeemable, InvalidCode, StripeUnavailable
from mediagate.billing.models import Order
from mediagate.billing.packages import money
from mediagate.billing.redeeming import redeem
from mediagate.billing.schemas import RedeemRequest, Redemption
from mediagate.billing.state import billing_state
from mediagate.core.errors import InvalidRequest, NotFound, RateLimited
from mediagate.core.http import public_base, read_body, read_json_body, success
from mediagate.core.schemas import BEARER, answers
from mediagate.core.state import core_state
from mediagate.keys.deps import CurrentKey
from mediagate.ledger import service as ledger
from mediagate.mail.outbox import outbox_of
from mediagate.web.render import page
from mediagate.web.security import SignedIn, check_csrf, form
from mediagate.web.sessions import Viewer

pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["account"])
WEBHOOK_LIMIT = 512 * 1024
MAX_CODE_LENGTH = 100
STRIPE_CHECKOUT = "https://checkout.stripe.com"


async def _topup_page(
    request: Request,
    who: Viewer,
    status: int = 200,
    *,
    error: str | None = None,
    notice: str | None = None,
) -> Response:
    billing = billing_state(request)
    account_id = who.user.account_id
    async with core_state(request).db.read() as session:
        balances = {m: await ledger.balance(session, account_id, m) for m in ledger.MODES}
    required = core_state(request).settings.require_email_verification
    response = page(
        request,
        "topup.html",
        who,
        status,
        verify_first=users.needs_verification(required, who.user),
        required=required,
        packages=[p for p in billing.packages.values() if p.active],
        payments=billing.payments is not None,
        credit_mode=billing.credit_mode,
        balances=balances,
        cancelled=request.query_params.get("cancelled"),
        error=error,
        notice=notice,
    )
    # The package form's answer is a redirect to Stripe's hosted page: allow it as a
    # form target (browsers apply form-action to redirects too).
    csp = response.headers["content-security-policy"]
    response.headers["content-security-policy"] = csp.replace(
        "form-action 'self'", f"form-action 'self' {_checkout_origin(request)}"
    )
    return response


def _checkout_origin(request: Request) -> str:
    base = core_state(request).settings.stripe_api_base
    if not base:
        return STRIPE_CHECKOUT
    parts = urlsplit(base)
    return f"{parts.scheme}://{parts.netloc}"


@pages.get("/topup")
async def topup_page(request: Request, who: SignedIn) -> Response:
    return await _topup_page(request, who)


@pages.post("/topup")
async def topup(request: Request, who: SignedIn) -> Response:
    fields = await form(request)
    check_csrf(request, who.csrf_token, fields)
    billing = billing_state(request)
    if billing.payments is None:
        return await _topup_page(request, who, 503, error="Buying credits is not set up here")
    package = billing.packages.get(fields.get("package", ""))
    if package is None or not package.active:
        return await _topup_page(request, who, 400, error="Choose one of the packages on sale")
    core = core_state(request)
    if users.needs_verification(core.settings.require_email_verification, who.user):
        error = users.UNVERIFIED.format(email=who.user.email)
        return await _topup_page(request, who, 403, error=error)
    async with core.db.write() as session:
        order = await orders.create_order(
            session,
            account_id=who.user.account_id,
            email=who.user.email,
            package=package,
            mode=billing.credit_mode,
            check_after_s=core.settings.billing_pending_check_s,
        )
    try:
        checkout = await billing.payments.create_checkout_session(
            orders.checkout_params(order, public_base(request)),
            idempotency_key=orders.idempotency_key(order.id),
        )
    except StripeUnavailable as exc:
        async with core.db.write() as session:
            await orders.fail_order(session, order.id, exc.message)
        return await _topup_page(request, who, 502, error=f"{exc.message} (order {order.id})")
    async with core.db.write() as session:
        await orders.attach_session(session, order.id, checkout)
    return RedirectResponse(str(checkout["url"]), status_code=303)


@pages.post("/redeem")
async def redeem_on_page(request: Request, who: SignedIn) -> Response:
    fields = await form(request)
    check_csrf(request, who.csrf_token, fields)
    try:
        done, balance = await redeem(
            request, fields.get("code", ""), account_id=who.user.account_id, key_mode=None
        )
    except RateLimited as exc:
        response = await _topup_page(request, who, 429, error=exc.message)
        response.headers.update(exc.headers)
        return response
    except (InvalidCode, CodeNotRedeemable) as exc:
        return await _topup_page(request, who, exc.status, error=exc.message)
    notice = f"Code redeemed: {done.credits} {done.mode} credits added ({balance.available} now)"
    return await _topup_page(request, who, notice=notice)


@pages.get("/orders")
async def orders_page(request: Request, who: SignedIn) -> Response:
    async with core_state(request).db.read() as session:
        rows = list(
            await session.scalars(
                select(Order)
                .where(Order.account_id == who.user.account_id)
                .order_by(Order.created_at.desc())
                .limit(200)
            )
        )
    return page(request, "orders.html", who, orders=rows, money=money)


@pages.get("/orders/{order_id}")
async def receipt(request: Request, order_id: str, who: SignedIn) -> Response:
    async with core_state(request).db.read() as session:
        order = await session.get(Order, order_id)
    if order is None or order.account_id != who.user.account_id:
        raise NotFound("No such order")
    returned = request.query_params.get("checkout") == "done"
    return page(request, "receipt.html", who, order=order, returned=returned, money=money)


@api.post(
    "/account/redeem",
    summary="Add a redemption code's credits to the key's account",
    responses=answers(
        Redemption,
        *(400, 401, 409, 413, 429),
        e409="conflict: the code is used up, expired, or already redeemed by this account",
    ),
    openapi_extra={
        **BEARER,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": RedeemRequest.model_json_schema()}},
        },
    },
)
async def redeem_by_api(request: Request, caller: CurrentKey) -> JSONResponse:
    """Body `{"code": "MG-…"}`. The credits go to the key's mode (live or test), or to
    test if the code's batch is a test batch. Answers `data`: credits, mode, batch,
    available. 400 for a malformed or unknown code, 409 if it cannot be redeemed (used,
    expired, already redeemed by this account), 429 past the attempts per minute."""
    body = await read_json_body(request, core_state(request).settings.max_body_bytes)
    code = body.get("code") if isinstance(body, dict) else None
    if not isinstance(code, str) or not 0 < len(code) <= MAX_CODE_LENGTH:
        raise InvalidRequest('The body must be {"code": "<your code>"}', param="code")
    done, balance = await redeem(request, code, account_id=caller.account_id, key_mode=caller.mode)
    return success(
        Redemption(
            credits=done.credits, mode=done.mode, batch=done.batch_id, available=balance.available
        ).model_dump()
    )


@api.post("/billing/stripe/webhook", include_in_schema=False)
async def stripe_webhook(request: Request) -> JSONResponse:
    """Stripe's events: verified over the raw body, stored, then acted on once."""
    payments = billing_state(request).require_payments()
    payload = await read_body(request, WEBHOOK_LIMIT)
    event = payments.verify(payload, request.headers.get("stripe-signature", ""))
    db = core_state(request).db
    async with db.write() as session:
        await events.store(session, event, payload.decode("utf-8"))
    async with db.write() as session:
        outcome = await events.handle(session, str(event["id"]), livemode=not payments.test_key)
    if outcome == "paid":  # committed: now the receipt (once, however often Stripe tells us)
        order_id = receipts.paid_order_id(event)
        await receipts.mail_receipt(db, outbox_of(request), order_id, public_base(request))
    return JSONResponse({"received": True, "outcome": outcome})
