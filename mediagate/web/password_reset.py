"""Password reset by emailed link. Asking answers the same, at once, whether or not the
address has an account: looking it up, writing the token and mailing all happen in the
background (Outbox.post_composed), so neither the words nor the time of the answer tell.
The link works once, for MEDIAGATE_PASSWORD_RESET_TTL_S; using it sets the new password,
signs the user out everywhere and mails them a notice."""

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mediagate.accounts import email_tokens, users
from mediagate.accounts.models import User
from mediagate.accounts.passwords import check_new
from mediagate.core.db import Database
from mediagate.core.errors import InvalidRequest, RateLimited
from mediagate.core.http import public_base
from mediagate.core.settings import Settings
from mediagate.core.state import core_state
from mediagate.mail.messages import Message, compose
from mediagate.mail.outbox import outbox_of
from mediagate.web import sessions
from mediagate.web.auth import auth_page, client_address, limited, limits_of, passwords_of
from mediagate.web.render import redirect
from mediagate.web.security import CSRF_COOKIE, SESSION_COOKIE, check_csrf, form

router = APIRouter(include_in_schema=False)
SENT = (
    "If an account uses that address, we have mailed it a link to choose a new password."
    " It works once, for a limited time."
)


@router.get("/password/forgot")
async def forgot_page(request: Request) -> Response:
    notice = SENT if request.query_params.get("sent") else None
    return auth_page(request, "forgot_password.html", notice=notice)


@router.post("/password/forgot")
async def forgot(request: Request) -> Response:
    fields = await form(request)
    check_csrf(request, request.cookies.get(CSRF_COOKIE), fields)
    given = fields.get("email", "")
    try:
        email = users.normal_email(given)
    except InvalidRequest as exc:
        return auth_page(request, "forgot_password.html", 400, error=exc.message, email=given)
    try:
        await limits_of(request).password_reset(client_address(request), email)
    except RateLimited as exc:
        return limited(request, "forgot_password.html", exc, "password-reset", email)
    core = core_state(request)
    base = public_base(request)
    outbox_of(request).post_composed(lambda: _reset_mail(core.db, core.settings, base, email))
    return redirect("/password/forgot?sent=1")


async def _reset_mail(db: Database, settings: Settings, base: str, email: str) -> Message | None:
    """The reset mail for `email`'s user with a new token; None if no user has it."""
    async with db.write() as session:
        user = await users.by_email(session, email)
        if user is None:
            return None
        ttl = settings.password_reset_ttl_s
        token = await email_tokens.issue(session, user.id, "reset", user.email, ttl_s=ttl)
    return compose(
        "reset_password",
        user.email,
        link=f"{base}/password/reset?token={token}",
        minutes=max(1, ttl // 60),
    )


@router.get("/password/reset")
async def reset_page(request: Request) -> Response:
    token = request.query_params.get("token", "")
    async with core_state(request).db.read() as session:
        found = await email_tokens.peek(session, token, "reset") if token else None
    return auth_page(
        request, "reset_password.html", 200 if found else 400, token=token if found else None
    )


@router.post("/password/reset")
async def reset(request: Request) -> Response:
    fields = await form(request)
    check_csrf(request, request.cookies.get(CSRF_COOKIE), fields)
    token, password = fields.get("token", ""), fields.get("password", "")
    try:
        check_new(password)
    except InvalidRequest as exc:
        return auth_page(request, "reset_password.html", 400, token=token, error=exc.message)
    # Hashed before the write unit (no lock held while argon2 runs); spent inside it.
    password_hash = await passwords_of(request).hash(password)
    core = core_state(request)
    async with core.db.write() as session:
        spent = await email_tokens.spend(session, token, "reset")
        user = await session.get(User, spent.user_id) if spent else None
        if spent is None or user is None or user.email != spent.email:
            user = None  # used, expired, or mailed to an address the user no longer has
        else:
            await users.set_password_hash(session, user.id, password_hash)
            await sessions.end_all(session, user.id)
            await users.mark_verified(session, user.id, user.email)  # they read its mail
    if user is None:
        return auth_page(request, "reset_password.html", 400, token=None)
    again = f"{public_base(request)}/password/forgot"
    outbox_of(request).post(compose("password_changed", user.email, link=again))
    response = redirect("/login?reset=1")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
