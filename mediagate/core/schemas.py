"""The response envelope and the one error shape, as OpenAPI models (API.md, Errors).

Routes still build their JSON by hand (`core.http.success`, `error_response`) for speed;
these models only document it, through `responses=` on each route decorator.
"""

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class Strict(BaseModel):
    """A documented object: its schema says `additionalProperties: false`, so a field added
    to the JSON but not here fails the schema fuzz test instead of drifting silently."""

    model_config = ConfigDict(extra="forbid")


class ErrorDetail(Strict):
    code: int
    type: str
    message: str
    param: str | None


class ErrorBody(Strict):
    """Every non-2xx answer."""

    code: int
    message: str
    error: ErrorDetail


class Envelope(Strict, Generic[T]):
    """Every 2xx JSON answer."""

    code: Literal[200]
    message: Literal["success"]
    data: T


ERROR_WHEN = {
    400: "invalid_request_error: a parameter is missing, of the wrong type, out of range or "
    "unknown; `param` names it",
    401: "authentication_error: no key, or a malformed, unknown, revoked or expired one",
    402: "insufficient_credits: the hold would overdraw the account",
    403: "permission_error",
    404: "not_found",
    409: "idempotency_error: a request with the same Idempotency-Key is still being processed",
    413: "invalid_request_error: the body is over the size limit",
    415: "invalid_request_error: unsupported content type",
    422: "idempotency_error: the Idempotency-Key was already used with a different body",
    429: "rate_limit_error: request rate, in-flight tasks or spending cap exceeded; "
    "`Retry-After` says when to retry",
    503: "provider_unavailable: no provider configured, or all failing, for this model",
}


def answers(ok: Any, *errors: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: 200 as `Envelope[ok]`, each error status with `ErrorBody`
    (a keyword `e404="…"` overrides the default description of that status)."""
    documented: dict[int | str, dict[str, Any]] = {
        200: {"model": Envelope[ok], "description": "Success"}
    }
    for status in errors:
        text = described.get(f"e{status}", ERROR_WHEN[status])
        documented[status] = {"model": ErrorBody, "description": text}
    return documented


# `openapi_extra=` of a route that takes an API key (`keys.deps.CurrentKey` reads the header
# itself, at no per-request cost, so FastAPI cannot see it).
BEARER: dict[str, Any] = {"security": [{"apiKey": []}]}
BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "An API key, `aio_live_…` or `aio_test_…`",
}


def finish_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """The generated schema, corrected where FastAPI cannot see what the app does."""
    schema.setdefault("components", {}).setdefault("securitySchemes", {})["apiKey"] = BEARER_SCHEME
    # FastAPI documents a 422 for parameter validation; our handler answers those 400
    # (`core.http`), and routes that can fail so declare their 400 themselves.
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            answer = operation.get("responses", {}).get("422")
            if answer and "HTTPValidationError" in str(answer.get("content")):
                del operation["responses"]["422"]
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    return schema
