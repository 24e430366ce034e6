"""Sign up, sign in, sign out. Every sign-in starts a new session (no fixation). Sign-up
answers the same whether or not the email is registered (no enumeration) and never signs
anyone in; the new user signs in next, and is mailed a link confirming the address
(web/verify_email.py). Both are rate limited (web/auth_limits.py), and passwords are
hashed off the event loop (accounts/passwords.py). With two-factor sign-in on, the right
password opens only a pending session; web/two_factor.py asks for the code."""

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.exc import IntegrityError

from mediagate.accounts import email_tokens, two_factor, users
from mediagate.accounts.passwords import Passwords, check_new
from mediagate.core.errors import InvalidRequest, RateLimited
from mediagate.core.state import core_state
from mediagate.ledger import service as ledger
from mediagate.mail.links import link
from mediagate.mail.messages import Message, compose
from mediagate.mail.outbox import outbox_of
from mediagate.web import sessions
from mediagate.web.auth_limits import AuthLimits
from mediagate.web.render import page, redirect
from mediagate.web.security import (
    CSRF_COOKIE,
    PENDING_COOKIE,
    SESSION_COOKIE,
    MaybeViewer,
    check_csrf,
    client_of,
    form,
    pre_session_token,
    set_cookie,
)
from mediagate.web.sessions import SESSION_DAYS

router = APIRouter(include_in_schema=False)
CODE_PAGE = "/login/code"
SIGNED_UP = "/login?signed_up=1"
SIGNED_UP_NOTICE = (
    "Thanks. If this email is new, its account is ready: sign in with it and your password."
)
LOGIN_NOTICES = (
    ("signed_up", SIGNED_UP_NOTICE),
    ("reset", "Your password is changed and every session signed out: sign in with the new one."),
    ("verified", "Thanks: your email address is confirmed."),
    ("deleted", "Your account was deleted. Thank you for using mediagate."),
    ("expired", "That sign-in expired or took too many codes; sign in again."),
)


def auth_page(request: Request, name: str, status: int = 200, **context: object) -> Response:
    token = pre_session_token(request)
    response = page(request, name, None, status, form_token=token, **context)
    set_cookie(response, request, CSRF_COOKIE, token, max_age=3600)
    return response


def limited(request: Request, name: str, exc: RateLimited, what: str, email: str) -> Response:
    wait = exc.headers["Retry-After"]
    message = f"Too many {what} attempts; try again in {wait} seconds"
    response = auth_page(request, name, 429, error=message, email=email)
    response.headers.update(exc.headers)
    return response


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def passwords_of(request: Request) -> Passwords:
    passwords: Passwords = request.app.state.passwords
    return passwords


def limits_of(request: Request) -> AuthLimits:
    limits: AuthLimits = request.app.state.auth_limits
    return limits


@router.get("/signup")
async def signup_page(request: Request, who: MaybeViewer) -> Response:
    return redirect("/dashboard") if who else auth_page(request, "signup.html")


@router.post("/signup")
async def signup(request: Request) -> Response:
    fields = await form(request)
    check_csrf(request, request.cookies.get(CSRF_COOKIE), fields)
    given = fields.get("email", "")
    try:
        await limits_of(request).signup(client_address(request))
    except RateLimited as exc:
        return limited(request, "signup.html", exc, "sign-up", given)
    core = core_state(request)
    password = fields.get("password", "")
    try:
        email = users.normal_email(given)
        check_new(password)
    except InvalidRequest as exc:
        return auth_page(request, "signup.html", 400, error=exc.message, email=given)
    # Hashed before the write unit (no lock held for 0.3 s), and whether or not the email
    # is taken: both answers cost the same.
    password_hash = await passwords_of(request).hash(password)
    token = None
    try:
        async with core.db.write() as session:
            user = await users.create_user(session, email, password_hash)
            ttl = core.settings.email_verify_ttl_s
            token = await email_tokens.issue(session, user.id, "verify", email, ttl_s=ttl)
            if core.settings.signup_test_credits > 0:
                await ledger.grant(
                    session,
                    user.account_id,
                    "test",
                    core.settings.signup_test_credits,
                    reason="welcome test credits",
                )
    except (users.EmailTaken, IntegrityError):  # IntegrityError: a concurrent twin won
        pass  # the same answer as a new account: whether an email is registered is private
    if token is not None:  # committed: now the mail (in the background, so no timing tells)
        outbox_of(request).post(verification_mail(request, email, token))
    return redirect(SIGNED_UP)


def verification_mail(request: Request, email: str, token: str) -> Message:
    hours = max(1, core_state(request).settings.email_verify_ttl_s // 3600)
    url = link(request, f"/verify-email?token={token}")
    return compose("verify_email", email, link=url, hours=hours)


@router.get("/login")
async def login_page(request: Request, who: MaybeViewer) -> Response:
    if who:
        return redirect("/dashboard")
    notice = next((text for name, text in LOGIN_NOTICES if request.query_params.get(name)), None)
    return auth_page(request, "login.html", notice=notice)


@router.post("/login")
async def login(request: Request) -> Response:
    fields = await form(request)
    check_csrf(request, request.cookies.get(CSRF_COOKIE), fields)
    email = fields.get("email", "").strip().lower()
    try:
        await limits_of(request).login(client_address(request), email)
    except RateLimited as exc:
        return limited(request, "login.html", exc, "sign-in", email)
    core = core_state(request)
    passwords = passwords_of(request)
    password = fields.get("password", "")
    async with core.db.read() as session:
        user = await users.by_email(session, email)
    if not await passwords.verify(user.password_hash if user else None, password) or not user:
        return auth_page(request, "login.html", 400, error="Wrong email or password", email=email)
    rehashed = (
        await passwords.hash(password) if passwords.needs_rehash(user.password_hash) else None
    )
    second_factor = two_factor.enabled(user)
    pending_for = timedelta(seconds=core.settings.two_factor_pending_s)
    async with core.db.write() as session:
        if rehashed is not None:
            await users.set_password_hash(session, user.id, rehashed)
        token = await sessions.start(
            session,
            user.id,
            client_of(request),
            pending_for=pending_for if second_factor else None,
        )
    if second_factor:  # half signed in: the code is asked next (web/two_factor.py)
        response = redirect(CODE_PAGE)
        set_cookie(
            response, request, PENDING_COOKIE, token, max_age=int(pending_for.total_seconds())
        )
        return response
    return signed_in_response(request, token)


def signed_in_response(request: Request, token: str) -> Response:
    response = redirect("/dashboard")
    set_cookie(response, request, SESSION_COOKIE, token, max_age=SESSION_DAYS * 86400)
    response.delete_cookie(CSRF_COOKIE, path="/")
    response.delete_cookie(PENDING_COOKIE, path="/")
    return response


@router.post("/logout")
async def logout(request: Request, who: MaybeViewer) -> Response:
    fields = await form(request)
    check_csrf(request, who.csrf_token if who else None, fields)
    token = request.cookies.get(SESSION_COOKIE, "")
    async with core_state(request).db.write() as session:
        await sessions.end(session, token)
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
