"""Sign up, sign in, sign out. Every sign-in starts a new session (no fixation); sign-in
attempts are rate limited per client address and per email."""

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mediagate.accounts import users
from mediagate.core.errors import InvalidRequest, RateLimited
from mediagate.core.state import core_state
from mediagate.keys.ratelimit import RateLimiter
from mediagate.ledger import service as ledger
from mediagate.web import sessions
from mediagate.web.render import page, redirect
from mediagate.web.security import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    MaybeViewer,
    check_csrf,
    form,
    pre_session_token,
    set_cookie,
)
from mediagate.web.sessions import SESSION_DAYS

router = APIRouter(include_in_schema=False)


def _auth_page(request: Request, name: str, status: int = 200, **context: object) -> Response:
    token = pre_session_token(request)
    response = page(request, name, None, status, form_token=token, **context)
    set_cookie(response, request, CSRF_COOKIE, token, max_age=3600)
    return response


@router.get("/signup")
async def signup_page(request: Request, who: MaybeViewer) -> Response:
    return redirect("/dashboard") if who else _auth_page(request, "signup.html")


@router.post("/signup")
async def signup(request: Request) -> Response:
    fields = await form(request)
    check_csrf(request, request.cookies.get(CSRF_COOKIE), fields)
    core = core_state(request)
    try:
        async with core.db.write() as session:
            user = await users.create_user(
                session, fields.get("email", ""), fields.get("password", "")
            )
            if core.settings.signup_test_credits > 0:
                await ledger.grant(
                    session,
                    user.account_id,
                    "test",
                    core.settings.signup_test_credits,
                    reason="welcome test credits",
                )
            token = await sessions.start(session, user.id)
    except InvalidRequest as exc:
        return _auth_page(
            request, "signup.html", 400, error=exc.message, email=fields.get("email", "")
        )
    return _signed_in(request, token)


@router.get("/login")
async def login_page(request: Request, who: MaybeViewer) -> Response:
    return redirect("/dashboard") if who else _auth_page(request, "login.html")


@router.post("/login")
async def login(request: Request) -> Response:
    fields = await form(request)
    check_csrf(request, request.cookies.get(CSRF_COOKIE), fields)
    email = fields.get("email", "").strip().lower()
    limiter: RateLimiter = request.app.state.login_limiter
    client = request.client.host if request.client else "unknown"
    try:
        await limiter.check(f"login-ip:{client}")
        await limiter.check(f"login-email:{email}")
    except RateLimited as exc:
        response = _auth_page(request, "login.html", 429, error=exc.message, email=email)
        response.headers.update(exc.headers)
        return response
    core = core_state(request)
    async with core.db.write() as session:
        user = await users.verify(session, email, fields.get("password", ""))
        token = await sessions.start(session, user.id) if user else None
    if token is None:
        return _auth_page(request, "login.html", 400, error="Wrong email or password", email=email)
    return _signed_in(request, token)


def _signed_in(request: Request, token: str) -> Response:
    response = redirect("/dashboard")
    set_cookie(response, request, SESSION_COOKIE, token, max_age=SESSION_DAYS * 86400)
    response.delete_cookie(CSRF_COOKIE, path="/")
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
