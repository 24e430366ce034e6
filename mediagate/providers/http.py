"""One HTTP call to a provider, with transport failures already classified."""

from typing import Any

import httpx2

from mediagate.media.fetcher import FetchError, SafeFetcher
from mediagate.providers.base import PollResult
from mediagate.providers.errors import (
    ProviderRejected,
    ProviderRetryable,
    SubmitOutcomeUnknown,
    looks_like_policy,
)


async def call_json(
    client: httpx2.AsyncClient,
    provider: str,
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    json: dict[str, Any] | None = None,
    creates: bool = False,
) -> tuple[int, Any]:
    """(status, parsed body). `creates=True` marks a call that may create an upstream task:
    if we cannot tell whether it arrived, that is SubmitOutcomeUnknown, never retryable."""
    try:
        response = await client.request(method, url, headers=headers, json=json)
    except (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout) as exc:
        raise ProviderRetryable(provider, f"could not connect ({type(exc).__name__})") from exc
    except httpx2.TransportError as exc:
        if creates:
            raise SubmitOutcomeUnknown(
                provider, f"no answer to the submit ({type(exc).__name__})"
            ) from exc
        raise ProviderRetryable(provider, f"no answer ({type(exc).__name__})") from exc
    try:
        body = response.json()
    except ValueError:
        if creates and response.is_success:
            raise SubmitOutcomeUnknown(provider, "unreadable answer to the submit") from None
        raise ProviderRetryable(
            provider, f"unreadable answer (HTTP {response.status_code})"
        ) from None
    return response.status_code, body


def retry_after(headers: httpx2.Headers | None, default: float = 1.0) -> float:
    value = headers.get("retry-after") if headers else None
    try:
        return max(default, float(value)) if value else default
    except ValueError:
        return default


class ResultFetcher:
    """Downloads result images through the SSRF-safe fetcher (provider CDNs are public;
    private addresses stay refused), classifying failures for the runner."""

    def __init__(self, fetcher: SafeFetcher, max_bytes: int = 50_000_000) -> None:
        self.fetcher = fetcher
        self.max_bytes = max_bytes

    async def fetch(self, provider: str, url: str) -> bytes:
        try:
            return (await self.fetcher.fetch(url, max_bytes=self.max_bytes)).body
        except FetchError as exc:
            if exc.reason in ("timed_out", "unreachable"):
                raise ProviderRetryable(provider, f"result image: {exc.message}") from exc
            raise ProviderRejected(
                provider, f"result image could not be downloaded: {exc.message}"
            ) from exc


def failed(label: str, reason: Any) -> PollResult:
    """An upstream failure, classified: content policy (the user's to fix) or not."""
    text = str(reason or "generation failed")
    kind = "content_policy_violation" if looks_like_policy(text) else "generation_failed"
    return PollResult("failed", error_type=kind, error_message=f"{label}: {text}")


def required_id(provider: str, value: Any, what: str) -> str:
    """The upstream id from a submit answer; a missing one is a garbled answer."""
    if not isinstance(value, str) or not value:
        raise ProviderRetryable(provider, f"the submit answer has no {what}")
    return value


def image_urls(items: Any) -> list[str] | None:
    """`[{"url": ...}, ...]` as a list of URLs, or None if it is anything else or empty."""
    if not isinstance(items, list) or not items:
        return None
    urls = [i.get("url") for i in items if isinstance(i, dict)]
    return (
        [u for u in urls if isinstance(u, str)]
        if len(urls) == len(items) and all(isinstance(u, str) for u in urls)
        else None
    )
