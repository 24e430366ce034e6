"""Every answer on /v1 that is not a success is in OpenAI's error shape,
`{"error": {"message", "type", "param", "code"}}`, which the `openai` package parses."""

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from mediagate.core.errors import InvalidRequest, MediagateError

OPENAI_TYPES = {
    "not_found": "invalid_request_error",
    "idempotency_error": "invalid_request_error",
    "insufficient_credits": "insufficient_quota",
    "provider_unavailable": "server_error",
    "api_error": "server_error",
}
"""Our error types (core/errors.py) as OpenAI names them; the rest are spelled alike.
Ours stays in `code`, so nothing is lost."""


class OpenAIError(MediagateError):
    """An error only the OpenAI door has, with OpenAI's own `type` and `code`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, param=param)
        self.openai_status = status
        self.openai_type = type_
        self.code = code
        self.extra = extra or {}
        self._headers = headers or {}

    @property
    def headers(self) -> dict[str, str]:
        return self._headers


def openai_error(
    status: int,
    message: str,
    *,
    type_: str,
    param: str | None = None,
    code: str | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    error = {"message": message, "type": type_, "param": param, "code": code, **(extra or {})}
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def render(exc: Exception) -> JSONResponse:
    if isinstance(exc, OpenAIError):
        return openai_error(
            exc.openai_status,
            exc.message,
            type_=exc.openai_type,
            param=exc.param,
            code=exc.code,
            extra=exc.extra,
            headers=exc.headers,
        )
    if isinstance(exc, MediagateError):
        return openai_error(
            exc.status,
            exc.message,
            type_=OPENAI_TYPES.get(exc.type, exc.type),
            param=exc.param,
            code=exc.type,
            headers=exc.headers,
        )
    if isinstance(exc, RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        return openai_error(
            400,
            first.get("msg", "Invalid request"),
            type_=InvalidRequest.type,
            param=".".join(loc) or None,
        )
    assert isinstance(exc, HTTPException)
    return openai_error(
        exc.status_code,
        str(exc.detail),
        type_="invalid_request_error" if exc.status_code < 500 else "server_error",
    )


class OpenAIRoute(APIRoute):
    """Renders the errors of its handler, dependencies (the key check) included, in
    OpenAI's shape; anything unexpected still reaches the app's logged 500."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except (MediagateError, RequestValidationError, HTTPException) as exc:
                return render(exc)

        return handle


def openai_body_error(status: int, message: str, headers: dict[str, str]) -> JSONResponse:
    """A body refused before any route ran (core.bodies), in OpenAI's shape."""
    return openai_error(status, message, type_="invalid_request_error", headers=headers)
