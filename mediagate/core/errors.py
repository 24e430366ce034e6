"""The one error hierarchy. Each error knows its HTTP status and `type`; a docstring is
its default message. Rendered once, by `core.http.install_error_handlers`."""

from typing import ClassVar


class MediagateError(Exception):
    """Internal error"""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "api_error"

    def __init__(self, message: str | None = None, *, param: str | None = None) -> None:
        self.message = message or (self.__doc__ or "").strip()
        self.param = param
        super().__init__(self.message)

    @property
    def headers(self) -> dict[str, str]:
        return {}


class InvalidRequest(MediagateError):
    """Invalid request"""

    status = 400
    type = "invalid_request_error"


class PayloadTooLarge(InvalidRequest):
    """Request body too large"""

    status = 413

    @property
    def headers(self) -> dict[str, str]:
        return {"Connection": "close"}  # so the server reads no more of the body


class UnsupportedMediaType(InvalidRequest):
    """Content-Type must be application/json"""

    status = 415


class AuthenticationFailed(MediagateError):
    """Invalid API key"""

    status = 401
    type = "authentication_error"


class Forbidden(MediagateError):
    """Not allowed"""

    status = 403
    type = "permission_error"


class NotFound(MediagateError):
    """Not found"""

    status = 404
    type = "not_found"


class Gone(MediagateError):
    """This file expired and was deleted"""

    status = 410
    type = "expired"


class IdempotencyInProgress(MediagateError):
    """A request with this Idempotency-Key is still being processed"""

    status = 409
    type = "idempotency_error"


class IdempotencyMismatch(MediagateError):
    """This Idempotency-Key was already used with a different request body"""

    status = 422
    type = "idempotency_error"


class RateLimited(MediagateError):
    """Too many requests"""

    status = 429
    type = "rate_limit_error"

    def __init__(self, message: str | None = None, *, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, round(self.retry_after_s + 0.499)))}


class ProviderUnavailable(MediagateError):
    """No provider is available for this model"""

    status = 503
    type = "provider_unavailable"
