"""The second step of a two-factor sign-in: the pending session (a cookie of its own,
open MEDIAGATE_TWO_FACTOR_PENDING_S) takes a code from the authenticator, or a recovery
code, and becomes a full session under a new id. Each pending session may try
MEDIAGATE_TWO_FACTOR_ATTEMPTS codes; each user MEDIAGATE_TWO_FACTOR_ATTEMPTS_PER_HOUR over
all their sign-ins."""

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mediagate.accounts import two_factor
from mediagate.accounts.totp import SecretBox
from mediagate.core.clock import utcnow
from mediagate.core.errors import RateLimited
from mediagate.core.state import core_state
from mediagate.web import sessions
from mediagate.web.auth import CODE_PAGE, signed_in_response
from mediagate.web.auth_limits import AuthLimits
from mediagate.web.render import page, redirect
from mediagate.web.security import PENDING_COOKIE, check_csrf, client_of, form

router = APIRouter(include_in_schema=False)
EXPIRED = "/login?expired=1"


def box_of(request: Request) -> SecretBox:
    box: SecretBox = request.app.state.totp_box
    return box


def _code_page(request: Request, csrf: str, status: int = 200, **context: object) -> Response:
    return page(request, "login_code.html", None, status, form_token=csrf, **context)


def _start_over(request: Request) -> Response:
    response = redirect(EXPIRED)
    response.delete_cookie(PENDING_COOKIE, path="/")
    return response


@router.get(CODE_PAGE)
async def code_page(request: Request) -> Response:
    async with core_state(request).db.read() as session:
        found = await sessions.pending(session, request.cookies.get(PENDING_COOKIE, ""))
    if found is None:
        return _start_over(request)
    return _code_page(request, found[0].csrf_token)


@router.post(CODE_PAGE)
async def submit_code(request: Request) -> Response:
    fields = await form(request)
    core = core_state(request)
    async with core.db.read() as session:
        found = await sessions.pending(session, request.cookies.get(PENDING_COOKIE, ""))
    if found is None:
        return _start_over(request)
    pending, user = found
    check_csrf(request, pending.csrf_token, fields)
    limits: AuthLimits = request.app.state.auth_limits
    try:
        await limits.two_factor(user.id)
    except RateLimited as exc:
        wait = exc.headers["Retry-After"]
        response = _code_page(
            request,
            pending.csrf_token,
            429,
            error=f"Too many codes tried; try again in {wait} seconds",
        )
        response.headers.update(exc.headers)
        return response
    code = fields.get("code", "")
    async with core.db.write() as session:
        if not await sessions.take_attempt(session, pending.id, core.settings.two_factor_attempts):
            token = None
        else:
            used = await two_factor.verify(session, user, code, box_of(request), utcnow())
            token = (
                await sessions.complete(session, pending.id, user.id, client_of(request))
                if used
                else ""
            )
    if token is None:  # out of attempts: the pending session is gone
        return _start_over(request)
    if not token:
        return _code_page(request, pending.csrf_token, 400, error=two_factor.WRONG_CODE)
    return signed_in_response(request, token)
