"""HTTP plumbing shared by every route: request ids, the error envelope, body reading."""

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mediagate.core.errors import InvalidRequest, MediagateError, PayloadTooLarge
from mediagate.core.ids import random_base62
from mediagate.core.logs import request_id_var

log = logging.getLogger("mediagate.http")
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
HTTP_TYPES = {404: "not_found", 401: "authentication_error", 429: "rate_limit_error"}
API_PREFIXES = ("/api/", "/v1/")
"""Machine doors: their errors are always the JSON shape, whatever the client accepts."""

HtmlErrorPage = Callable[[Request, int, str, dict[str, str] | None], Awaitable[Response]]
"""Renders an error as a page for a person (status, message, headers): given by the web
layer, so this module imports no domain."""


class RequestIdMiddleware:
    """Takes a sane incoming X-Request-Id or makes one; echoes it on the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"").decode(
            "latin-1"
        )
        request_id = incoming if REQUEST_ID_RE.match(incoming) else f"req_{random_base62(16)}"
        # Kept in the scope too: the last-resort 500 handler runs outside this middleware.
        scope.setdefault("state", {})["request_id"] = request_id
        request_id_var.set(request_id)  # each request runs in its own task context

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        await self.app(scope, receive, send_with_id)


def error_response(
    status: int,
    type_: str,
    message: str,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The one error shape (API.md, Errors)."""
    body = {
        "code": status,
        "message": message,
        "error": {"code": status, "type": type_, "message": message, "param": param},
    }
    return JSONResponse(body, status_code=status, headers=headers)


def public_base(request: Request) -> str:
    """The base of the absolute URLs we hand out: PUBLIC_BASE_URL, else the request's own."""
    configured = request.app.state.core.settings.public_base_url
    return str(configured or request.base_url).rstrip("/")


def files_base(request: Request) -> str:
    """The base of the file URLs we hand out: FILES_BASE_URL, else `public_base`."""
    configured = request.app.state.core.settings.files_base_url
    return configured.rstrip("/") if configured else public_base(request)


def success(data: Any) -> JSONResponse:
    return JSONResponse({"code": 200, "message": "success", "data": data})


def _quality(media_range: str) -> tuple[str, float]:
    kind, *options = (part.strip() for part in media_range.split(";"))
    q = 1.0
    for option in options:
        name, _, value = option.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value)
            except ValueError:
                q = 0.0
    return kind.lower(), q


def wants_html(request: Request) -> bool:
    """A person's browser asking for a page: not an API door, and Accept names text/html
    at least as highly as JSON (a browser's navigation does; fetch() and curl do not)."""
    if request.url.path.startswith(API_PREFIXES):
        return False
    ranges = dict(_quality(r) for r in request.headers.get("accept", "").split(",") if r.strip())
    html = ranges.get("text/html", 0.0)
    return html > 0 and html >= ranges.get("application/json", 0.0)


def install_error_handlers(app: FastAPI, html_page: HtmlErrorPage | None = None) -> None:
    """Every error in the one JSON shape; as a page (`html_page`) when a browser navigates."""

    async def answer(
        request: Request,
        status: int,
        type_: str,
        message: str,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        if html_page is not None and wants_html(request):
            return await html_page(request, status, message, headers)
        return error_response(status, type_, message, param, headers)

    @app.exception_handler(MediagateError)
    async def _ours(request: Request, exc: MediagateError) -> Response:
        if exc.status >= 500:
            log.error("%s: %s", exc.type, exc.message)
        return await answer(request, exc.status, exc.type, exc.message, exc.param, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
        return await answer(
            request,
            400,
            InvalidRequest.type,
            first.get("msg", "Invalid request"),
            ".".join(loc) or None,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        type_ = HTTP_TYPES.get(
            exc.status_code, "invalid_request_error" if exc.status_code < 500 else "api_error"
        )
        return await answer(
            request, exc.status_code, type_, str(exc.detail), headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> Response:
        request_id = getattr(request.state, "request_id", "-")
        request_id_var.set(request_id)
        log.exception("unhandled error (request %s)", request_id)
        return await answer(
            request,
            500,
            "api_error",
            f"Internal server error (request id {request_id})",
            headers={"x-request-id": request_id},
        )


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing anything over `limit` bytes before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Request body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


JSON_MAX_DEPTH = 32
"""Deepest nesting of arrays and objects a JSON body may have (ours are two or three)."""


async def read_json_body(request: Request, limit: int) -> Any:
    """The parsed JSON body (at most `limit` bytes, JSON_MAX_DEPTH deep, valid Unicode)."""
    raw = await read_body(request, limit)
    if not raw.strip():
        raise InvalidRequest("The request body must be a JSON object")
    try:
        value = json.loads(raw)
    except RecursionError:
        raise InvalidRequest(
            f"Request body is nested more than {JSON_MAX_DEPTH} levels deep"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"Request body is not valid JSON: {exc}") from None
    except ValueError as exc:  # json.loads' only other one: an integer past int's digit limit
        raise InvalidRequest(f"Request body is not acceptable JSON: {exc}") from None
    check_json_shape(value)
    return value


def check_json_shape(value: Any) -> None:
    """Refuse nesting past JSON_MAX_DEPTH and strings that are not valid Unicode (a lone
    surrogate such as "\\ud800" parses, but cannot be stored, sent on or shown): an error
    naming the top-level field it is under."""
    stack: list[tuple[Any, int, str | None]] = [(value, 0, None)]
    while stack:
        item, depth, field = stack.pop()
        if isinstance(item, str):
            _check_text(item, field or "body")
        elif isinstance(item, dict | list):
            if depth >= JSON_MAX_DEPTH:
                raise InvalidRequest(
                    f"Request body is nested more than {JSON_MAX_DEPTH} levels deep", param=field
                )
            pairs = item.items() if isinstance(item, dict) else ((None, v) for v in item)
            for key, child in pairs:
                if key is not None:
                    _check_text(key, field or "body")
                stack.append((child, depth + 1, field if field or key is None else key))


def _check_text(text: str, field: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequest(
                f"{field} is not valid Unicode text (it holds a lone surrogate)",
                param=None if field == "body" else field,
            ) from None
