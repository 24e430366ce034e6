"""Confirming the address a user signed up with: the link mailed at sign-up (or sent
again, rate limited) opens a page whose button spends the token. A GET never spends a
link: mail scanners fetch links before their reader does, and would use it up."""

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mediagate.accounts import email_tokens, users
from mediagate.core.errors import RateLimited
from mediagate.core.state import core_state
from mediagate.mail.outbox import outbox_of
from mediagate.web.auth import auth_page, limits_of, verification_mail
from mediagate.web.render import redirect
from mediagate.web.security import CSRF_COOKIE, MaybeViewer, SignedIn, check_csrf, form

router = APIRouter(include_in_schema=False)
TITLE = "Confirm your email address"


@router.get("/verify-email")
async def verify_page(request: Request) -> Response:
    token = request.query_params.get("token", "")
    async with core_state(request).db.read() as session:
        found = await email_tokens.peek(session, token, "verify") if token else None
    return auth_page(
        request,
        "email_link.html",
        200 if found else 400,
        title=TITLE,
        token=token if found else None,
        explain=f"Confirm that {found.email} is your address." if found else "",
        action="/verify-email",
        button="Confirm",
    )


@router.post("/verify-email")
async def verify(request: Request, who: MaybeViewer) -> Response:
    fields = await form(request)
    check_csrf(request, request.cookies.get(CSRF_COOKIE), fields)
    async with core_state(request).db.write() as session:
        spent = await email_tokens.spend(session, fields.get("token", ""), "verify")
        done = spent is not None and await users.mark_verified(session, spent.user_id, spent.email)
    if not done:
        return auth_page(request, "email_link.html", 400, title=TITLE, token=None)
    return redirect("/profile/email?verified=1" if who else "/login?verified=1")


@router.post("/verify-email/resend")
async def resend(request: Request, who: SignedIn) -> Response:
    """Mail the signed-in user a new confirmation link (the older ones stop working)."""
    fields = await form(request)
    check_csrf(request, who.csrf_token, fields)
    user = who.user
    if user.email_verified_at is not None:
        return redirect("/profile/email?verified=1")
    try:
        await limits_of(request).emailed_link(user.id)
    except RateLimited as exc:
        wait = exc.headers["Retry-After"]
        return redirect(f"/profile/email?limited={wait}")
    core = core_state(request)
    async with core.db.write() as session:
        ttl = core.settings.email_verify_ttl_s
        token = await email_tokens.issue(session, user.id, "verify", user.email, ttl_s=ttl)
    outbox_of(request).post(verification_mail(request, user.email, token))
    return redirect("/profile/email?sent=verify")
