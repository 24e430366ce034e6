"""What the sync and async clients share, without I/O: requests as data, answers
parsed, when and how long to wait before a retry or the next poll."""

from __future__ import annotations

import math
import mimetypes
import os
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import httpx2

from mediagate_client.errors import APIError, MediagateError, error_class
from mediagate_client.types import IN_PROGRESS

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
API = "/api/v1"
MAX_WAIT_S = 60
"""The server holds a `Prefer: wait=N` answer for at most 60 s (docs/api.md, Waiting)."""
WAIT_MARGIN_S = 15.0
"""Read timeout beyond the wait asked for: the server answers when the wait is up."""


def settings(api_key: str | None, base_url: str | None) -> tuple[str, str]:
    """The key and base URL, from the arguments or MEDIAGATE_API_KEY / MEDIAGATE_BASE_URL."""
    key = api_key or os.environ.get("MEDIAGATE_API_KEY")
    if not key:
        raise MediagateError("No API key: pass api_key= or set MEDIAGATE_API_KEY")
    base = (base_url or os.environ.get("MEDIAGATE_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    return key, base


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of 429 and 5xx answers and of broken connections. A 429 waits what its
    `Retry-After` says (a refusal longer than `max_retry_after_s`, such as a spending cap
    until tomorrow, is raised at once); otherwise exponential backoff with jitter."""

    max_retries: int = 3
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    max_retry_after_s: float = 60.0

    def backoff(self, attempt: int) -> float:
        ceiling = min(self.max_backoff_s, self.backoff_s * 2.0**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def delay(
        self, attempt: int, status: int | None, error: APIError | None, replayable: bool
    ) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None to give up now."""
        if attempt >= self.max_retries:
            return None
        if status is None:  # the connection failed: the request may have arrived
            return self.backoff(attempt) if replayable else None
        if status == 429:  # refused before any work
            after = error.retry_after if error else None
            if after is None:
                return self.backoff(attempt)
            return after if after <= self.max_retry_after_s else None
        if status == 409 and error is not None and error.type == "idempotency_error":
            return self.backoff(attempt)  # our own first attempt is still being processed
        if status >= 500 and replayable:
            return self.backoff(attempt)
        return None


@dataclass
class Call:
    """One API request. `replayable`: safe to send again after a broken connection or a
    5xx (reads, cancels, uploads, and submits that carry an Idempotency-Key; an upload
    sent twice leaves one unused file)."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes]] | None = None
    replayable: bool = True
    read_timeout: float | None = None


def submit_call(endpoint: str, model: str, params: dict[str, Any], key: str | None) -> Call:
    """A generation submit with its Idempotency-Key, made once so every retry reuses it."""
    return Call(
        "POST",
        endpoint,
        json={"model": model, **params},
        headers={"Idempotency-Key": key or f"mgc-{uuid.uuid4()}"},
    )


def wait_call(task_id: str, wait_s: int) -> Call:
    return Call(
        "GET",
        f"{API}/tasks/{task_id}",
        headers={"Prefer": f"wait={wait_s}"},
        read_timeout=wait_s + WAIT_MARGIN_S,
    )


def list_params(
    *,
    status: str | None,
    model: str | None,
    created_after: datetime | str | None,
    created_before: datetime | str | None,
    page_size: int | None,
) -> dict[str, str]:
    """Query parameters of GET /api/v1/tasks, None left out, times as RFC 3339."""
    raw: dict[str, Any] = {
        "status": status,
        "model": model,
        "created_after": created_after,
        "created_before": created_before,
        "limit": page_size,
    }
    return {name: _query_value(value) for name, value in raw.items() if value is not None}


def _query_value(value: Any) -> str:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(value)


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` in seconds (RFC 9110: delay-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def error_from(response: httpx2.Response) -> APIError:
    """The typed exception for an error answer (any body: a proxy's HTML page too)."""
    body: Any
    try:
        body = response.json()
    except ValueError:
        body = response.text[:500]
    detail = body.get("error") if isinstance(body, dict) else None
    if isinstance(detail, dict):
        message = str(detail.get("message") or body.get("message") or "")
        type_, param = detail.get("type"), detail.get("param")
    else:
        message = str(body.get("message", "")) if isinstance(body, dict) else str(body)
        type_, param = None, None
    status = response.status_code
    return error_class(status, type_)(
        message or response.reason_phrase or f"HTTP {status}",
        status=status,
        type=type_,
        param=param,
        request_id=response.headers.get("x-request-id"),
        retry_after=parse_retry_after(response.headers.get("retry-after")),
        body=body,
    )


def data_of(response: httpx2.Response) -> Any:
    """The `data` of a success envelope."""
    body = response.json()
    return body["data"] if isinstance(body, dict) and "data" in body else body


def endpoint_of(model: dict[str, Any]) -> str:
    """The generation path a model serves (GET /api/v1/models/{id} `endpoint`)."""
    endpoint = str(model["endpoint"])
    return endpoint if endpoint.startswith("/") else f"{API}/{endpoint}"


class WaitClock:
    """The deadline of a `wait(timeout)` (None: no deadline) and the polling backoff
    used when the server does not hold answers (no `Preference-Applied`)."""

    def __init__(self, timeout: float | None, poll_s: float = 0.5, max_poll_s: float = 5.0):
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.poll_s = poll_s
        self.max_poll_s = max_poll_s

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def expired(self) -> bool:
        left = self.remaining()
        return left is not None and left <= 0

    def wait_s(self) -> int:
        """N for the next `Prefer: wait=N`: what is left, in whole seconds, at most 60."""
        left = self.remaining()
        return MAX_WAIT_S if left is None else max(1, min(MAX_WAIT_S, math.ceil(left)))

    def next_poll(self) -> float:
        """Seconds to sleep before the next poll (grows x1.5 up to `max_poll_s`)."""
        delay = self.poll_s
        self.poll_s = min(self.max_poll_s, self.poll_s * 1.5)
        left = self.remaining()
        return delay if left is None else max(0.0, min(delay, left))


def waited(response: httpx2.Response) -> bool:
    """Did the server hold this answer (so asking again at once is no busy loop)?"""
    return "wait=" in response.headers.get("preference-applied", "")


def is_final(data: dict[str, Any]) -> bool:
    return data.get("status") != IN_PROGRESS


def file_name(task_id: str, index: int, url: str, content_type: str | None) -> str:
    """`<task id>-<n><ext>`, the extension from the URL or else the content type."""
    suffix = PurePosixPath(urlsplit(url).path).suffix.lower()
    if not suffix or len(suffix) > 6:
        guessed = mimetypes.guess_extension((content_type or "").split(";")[0].strip())
        suffix = guessed or ".bin"
    return f"{task_id}-{index}{suffix}"
