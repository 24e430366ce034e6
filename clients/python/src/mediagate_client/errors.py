"""Every exception this package raises is a `MediagateError`. An error answer of the
server is an `APIError` subclass chosen by its `type` (the server's error shape:
`{"code", "message", "error": {"code", "type", "message", "param"}}`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mediagate_client.types import TaskView


class MediagateError(Exception):
    """Base of every error raised by mediagate-client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class APIConnectionError(MediagateError):
    """The server could not be reached (or the connection broke), retries included."""


class WaitTimeout(MediagateError):
    """`wait()` ran out of time while the task was still in progress (`.task` is its
    last known state: wait again, or cancel it)."""

    def __init__(self, message: str, task: TaskView) -> None:
        super().__init__(message)
        self.task = task


class ResultsExpired(MediagateError):
    """A completed task's files were deleted by the server's retention (`expired`)."""


class WebhookVerificationError(MediagateError):
    """A callback's signature or timestamp does not check out: do not act on it."""


class APIError(MediagateError):
    """The server answered with an error: `status` (HTTP), `type` and `param` as the
    server gave them, `request_id` to quote when reporting a problem."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        type: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.param = param
        self.request_id = request_id
        self.retry_after = retry_after
        self.body = body

    def __str__(self) -> str:
        where = f" (param {self.param})" if self.param else ""
        return f"{self.status} {self.type or 'error'}: {self.message}{where}"


class InvalidRequestError(APIError):
    """400/413/415: a parameter is missing, wrong or unknown (`param` names it)."""


class AuthenticationError(APIError):
    """401: the API key is missing, malformed, unknown, revoked or expired."""


class InsufficientCreditsError(APIError):
    """402: the account has too few credits for this task."""


class PermissionDeniedError(APIError):
    """403: this key may not do this (model, address)."""


class NotFoundError(APIError):
    """404: unknown model, task (or another account's) or route."""


class IdempotencyError(APIError):
    """409/422: the Idempotency-Key is in use, or was used with another body."""


class ConflictError(APIError):
    """409: the task can no longer be cancelled (the message says why)."""


class RateLimitError(APIError):
    """429: too many requests, tasks in flight or credits spent (`retry_after` in s)."""


class ProviderUnavailableError(APIError):
    """503: no provider can serve this model now."""


class InternalServerError(APIError):
    """5xx: a fault on the server's side (quote `request_id`)."""


BY_TYPE: dict[str, type[APIError]] = {
    "invalid_request_error": InvalidRequestError,
    "authentication_error": AuthenticationError,
    "insufficient_credits": InsufficientCreditsError,
    "permission_error": PermissionDeniedError,
    "not_found": NotFoundError,
    "idempotency_error": IdempotencyError,
    "conflict": ConflictError,
    "rate_limit_error": RateLimitError,
    "provider_unavailable": ProviderUnavailableError,
    "api_error": InternalServerError,
}
BY_STATUS: dict[int, type[APIError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    402: InsufficientCreditsError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: InvalidRequestError,
    415: InvalidRequestError,
    422: IdempotencyError,
    429: RateLimitError,
}


def error_class(status: int, type_: str | None) -> type[APIError]:
    """The exception for an answer: by the server's `type`, else by the HTTP status."""
    if type_ in BY_TYPE:
        return BY_TYPE[type_]
    if status in BY_STATUS:
        return BY_STATUS[status]
    return InternalServerError if status >= 500 else APIError
