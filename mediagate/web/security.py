"""Browser-facing protections: who is signed in, CSRF on every state-changing request,
same-origin checks, the session cookie and the response headers of every page."""

import hmac
import secrets
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, Request
from fastapi.responses import Response

from mediagate.core.clock import utcnow
from mediagate.core.errors import Forbidden, MediagateError
from mediagate.core.http import read_body
from mediagate.core.state import core_state
from mediagate.web import sessions
from mediagate.web.sessions import Viewer

SESSION_COOKIE = "mg_session"
CSRF_COOKIE = "mg_csrf"  # before sign-in: double-submit token for the login/sign-up forms
PENDING_COOKIE = "mg_pending"  # password given, two-factor code due (web/two_factor.py)


class LoginRequired(MediagateError):
    """Sign in to see this page"""

    status = 401
    type = "authentication_error"


def secure(request: Request) -> bool:
    base = core_state(request).settings.public_base_url or ""
    return request.url.scheme == "https" or base.startswith("https://")


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        secure=secure(request),
        samesite="lax",
        path="/",
    )


async def viewer(request: Request) -> Viewer | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    db = core_state(request).db
    async with db.read() as session:
        found = await sessions.lookup(session, token)
    now = utcnow()
    if found is not None and sessions.due_for_touch(found, now):
        async with db.write() as session:  # at most once a minute per session
            await sessions.touch(session, found.session_id, now)
    return found


def client_of(request: Request) -> sessions.Client:
    """The browser and address a sign-in comes from (as the server saw them)."""
    return sessions.Client(
        user_agent=request.headers.get("user-agent"),
        address=request.client.host if request.client else None,
    )


async def signed_in(request: Request) -> Viewer:
    found = await viewer(request)
    if found is None:
        raise LoginRequired()
    return found


async def admin(request: Request) -> Viewer:
    found = await signed_in(request)
    if not found.user.is_admin:
        raise Forbidden("Operators only")
    return found


def same_origin(request: Request) -> None:
    """Refuse requests a browser marks as coming from another site."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise Forbidden("Cross-site request refused")
    origin = request.headers.get("origin")
    if origin is not None and origin.rstrip("/") != _own_origin(request):
        raise Forbidden("Cross-origin request refused")


def _own_origin(request: Request) -> str:
    base = core_state(request).settings.public_base_url
    if base:
        scheme, _, rest = base.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0]}"
    return f"{request.url.scheme}://{request.url.netloc}"


async def form(request: Request) -> dict[str, str]:
    """An urlencoded form body (one value per field), capped."""
    body = await read_body(request, core_state(request).settings.form_max_bytes)
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


def check_csrf(request: Request, expected: str | None, fields: dict[str, str]) -> None:
    """The form's (or header's) token must match the one we issued; and same origin."""
    same_origin(request)
    given = fields.get("csrf_token") or request.headers.get("x-csrf-token") or ""
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Forbidden("Missing or wrong CSRF token; reload the page and try again")


def pre_session_token(request: Request) -> str:
    return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)


def page_headers(request: Request) -> dict[str, str]:
    """Everything from our own origin; result images and videos may come from the bucket
    when files are served by redirect to presigned URLs."""
    settings = core_state(request).settings
    images, media = "'self' data:", "'self'"
    if settings.storage_backend == "s3" and settings.s3_serve == "redirect":
        bucket = settings.s3_endpoint_url or "https://*.amazonaws.com"
        images, media = f"{images} {bucket}", f"{media} {bucket}"
    return {
        "Content-Security-Policy": (
            f"default-src 'self'; img-src {images}; media-src {media}; style-src 'self'; "
            "script-src 'self'; "
            "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        ),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


SignedIn = Annotated[Viewer, Depends(signed_in)]
MaybeViewer = Annotated[Viewer | None, Depends(viewer)]
