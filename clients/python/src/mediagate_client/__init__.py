"""mediagate-client: the Python client of a mediagate server (sync and async)."""

from mediagate_client._wire import RetryPolicy
from mediagate_client.async_client import AsyncClient, AsyncTask
from mediagate_client.client import Client, Task
from mediagate_client.errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    ConflictError,
    IdempotencyError,
    InsufficientCreditsError,
    InternalServerError,
    InvalidRequestError,
    MediagateError,
    NotFoundError,
    PermissionDeniedError,
    ProviderUnavailableError,
    RateLimitError,
    ResultsExpired,
    WaitTimeout,
    WebhookVerificationError,
)
from mediagate_client.types import IN_PROGRESS, Output, TaskView, Upload
from mediagate_client.webhooks import verify_webhook

__version__ = "0.1.0"
__all__ = [
    "IN_PROGRESS",
    "APIConnectionError",
    "APIError",
    "AsyncClient",
    "AsyncTask",
    "AuthenticationError",
    "Client",
    "ConflictError",
    "IdempotencyError",
    "InsufficientCreditsError",
    "InternalServerError",
    "InvalidRequestError",
    "MediagateError",
    "NotFoundError",
    "Output",
    "PermissionDeniedError",
    "ProviderUnavailableError",
    "RateLimitError",
    "ResultsExpired",
    "RetryPolicy",
    "Task",
    "TaskView",
    "Upload",
    "WaitTimeout",
    "WebhookVerificationError",
    "verify_webhook",
]
