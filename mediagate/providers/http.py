"""Provider API calls: one pooled client, transport failures already classified.

Provider calls are the runner's hot path (a submit, then polls, for every task), so they
go through aiohttp: on this machine its pool costs about 0.09 ms of CPU per call, where
httpx2's costs 0.5-0.8 ms (it probes the socket of every idle kept-alive connection on
each request). One worker holding thousands of tasks at a provider is bound by exactly
that (docs/performance.md). Downloads of user-given and result URLs stay on the SSRF-safe
fetcher (media/fetcher.py).
"""

import json as jsonlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import aiohttp

from mediagate.core.clock import utcnow
from mediagate.media.fetcher import FetchError, SafeFetcher
from mediagate.providers.base import PollResult
from mediagate.providers.errors import (
    ProviderRejected,
    ProviderRetryable,
    SubmitOutcomeUnknown,
    looks_like_policy,
)


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)
    """Lower-cased names."""


class ProviderHTTP:
    """One per process, shared by every adapter. `connections`: as many kept alive as
    steps may call at once, so a busy runner never reconnects."""

    def __init__(self, *, timeout_s: float, connections: int) -> None:
        # connect covers waiting for a pooled connection too: a request that timed out
        # there was never sent. sock_read is the wait for the answer.
        self.timeout = aiohttp.ClientTimeout(total=None, connect=timeout_s, sock_read=timeout_s)
        self.connections = connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # made on first use, on the event loop that uses it
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.connections, limit_per_host=0),
                timeout=self.timeout,
                trust_env=False,  # no proxy or netrc from the environment
            )
        return self._session

    async def call_json(
        self,
        provider: str,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        json: dict[str, Any] | None = None,
        creates: bool = False,
    ) -> tuple[int, Any]:
        """(status, parsed body). `creates=True` marks a call that may create an upstream
        task: if we cannot tell whether it arrived, that is SubmitOutcomeUnknown, never
        retryable."""
        answer = await self.call(provider, method, url, headers=headers, json=json, creates=creates)
        return answer.status, answer.body

    async def call(
        self,
        provider: str,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        json: dict[str, Any] | None = None,
        data: aiohttp.FormData | None = None,
        creates: bool = False,
        unreadable_errors: bool = False,
        timeout_s: float | None = None,
    ) -> Answer:
        """The answer with its headers. `unreadable_errors=True`: an error status whose
        body is not JSON comes back with `body=None` instead of being called garbled.
        `data`: a multipart body instead of JSON. `timeout_s`: the wait for the answer,
        for an API that answers slowly by design (default: the client's)."""
        options: dict[str, Any] = {}
        if timeout_s is not None:  # (passing timeout=None to aiohttp would mean no limit)
            options["timeout"] = aiohttp.ClientTimeout(
                total=None, connect=self.timeout.connect, sock_read=timeout_s
            )
        try:
            async with self._client().request(
                method, url, headers=headers, json=json, data=data, **options
            ) as answer:
                status, raw = answer.status, await answer.read()
                received = {k.lower(): v for k, v in answer.headers.items()}
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise ProviderRetryable(provider, f"could not connect ({type(exc).__name__})") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            if creates:
                raise SubmitOutcomeUnknown(
                    provider, f"no answer to the submit ({type(exc).__name__})"
                ) from exc
            raise ProviderRetryable(provider, f"no answer ({type(exc).__name__})") from exc
        try:
            body = jsonlib.loads(raw)
        except ValueError:
            if creates and 200 <= status < 300:
                raise SubmitOutcomeUnknown(provider, "unreadable answer to the submit") from None
            if unreadable_errors and status >= 400:
                return Answer(status, None, received)
            raise ProviderRetryable(provider, f"unreadable answer (HTTP {status})") from None
        return Answer(status, body, received)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class ResultFetcher:
    """Downloads results through the SSRF-safe fetcher (provider CDNs are public; private
    addresses stay refused), streaming them to a file, classifying failures for the runner."""

    def __init__(self, fetcher: SafeFetcher, *, deadline_s: float = 600.0) -> None:
        self.fetcher = fetcher
        self.deadline_s = deadline_s

    async def save(self, provider: str, url: str, dest: Path, *, max_bytes: int) -> None:
        try:
            await self.fetcher.download(url, dest, max_bytes=max_bytes, deadline_s=self.deadline_s)
        except FetchError as exc:
            if exc.reason in ("timed_out", "unreachable"):
                raise ProviderRetryable(provider, f"result: {exc.message}") from exc
            if exc.reason == "too_large":
                raise ProviderRejected(
                    provider,
                    f"the result is over this gateway's cap of {max_bytes:,} bytes",
                    error_type="generation_failed",
                ) from exc
            raise ProviderRejected(
                provider, f"result could not be downloaded: {exc.message}"
            ) from exc


def failed(label: str, reason: Any, *, kind: str | None = None) -> PollResult:
    """An upstream failure, classified: content policy (the user's to fix) or not."""
    text = str(reason or "generation failed")
    if kind is None:
        kind = "content_policy_violation" if looks_like_policy(text) else "generation_failed"
    return PollResult("failed", error_type=kind, error_message=f"{label}: {text}")


def required_id(provider: str, value: Any, what: str) -> str:
    """The upstream id from a submit answer; a missing one is a garbled answer."""
    if not isinstance(value, str) or not value:
        raise ProviderRetryable(provider, f"the submit answer has no {what}")
    return value


MAX_RETRY_AFTER_S = 3600.0
"""A longer wait than this is not worth keeping a task for; its deadline decides."""


def retry_after(
    headers: Mapping[str, str], default: float, *, now: datetime | None = None
) -> float:
    """Seconds to wait from a `Retry-After` header (lower-cased names): delay-seconds or an
    HTTP-date (RFC 9110 section 10.2.3); `default` when it is absent or unreadable."""
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return default
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:  # "-0000": still GMT, as every HTTP-date is
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or utcnow())).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)
