"""fal's queue API (queue.fal.run), generic: the endpoint and the body for a model come
from its route declaration.

POST {endpoint id}                         the route's body -> {request_id, ...}
GET  {owner}/{alias}/requests/{id}/status  IN_QUEUE | IN_PROGRESS | COMPLETED (+ error, error_type)
GET  {owner}/{alias}/requests/{id}         the result, or the request's error
PUT  {owner}/{alias}/requests/{id}/cancel  (removes a queued request; signals a running one)
The subpath of an endpoint id (after owner/alias) is not used after submit.
Sources: fal-client 1.0.3 `fal_client/client.py`; https://docs.fal.ai/model-endpoints/queue;
https://fal.ai/docs/errors (422 `detail[].type`, never `msg`; `X-Fal-Retryable`);
https://docs.fal.ai/documentation/model-apis/request-errors (flat `{detail, error_type}`).
"""

from pathlib import Path
from typing import Any

from mediagate.providers.base import PollResult, ProviderRequest
from mediagate.providers.errors import (
    ProviderAuthError,
    ProviderDeclined,
    ProviderMisconfigured,
    ProviderRejected,
    ProviderRetryable,
)
from mediagate.providers.http import Answer, ProviderHTTP, ResultFetcher, failed, required_id
from mediagate.providers.mapping import FlaggedOutputs, completion, upstream_body

NAME = "fal"
POLICY = "content_policy_violation"
"""fal's `type` for content the checker refused; our error type has the same name."""


def app_id(endpoint: str) -> str:
    """`owner/alias` of an endpoint id, as fal-client's queue URLs use it."""
    return "/".join(endpoint.strip("/").split("/")[:2])


class FalProvider:
    name = NAME
    supports_lookup = False  # no client reference: a lost submit answer needs reconciliation
    sends_callbacks = False  # not asked for: the queue is polled

    def __init__(
        self,
        http: ProviderHTTP,
        results: ResultFetcher,
        *,
        api_key: str,
        base_url: str,
        platform_url: str = "https://api.fal.ai/v1",
        flagged_outputs: FlaggedOutputs = "fail",
    ) -> None:
        self.http = http
        self.results = results
        self.base = base_url.rstrip("/")
        self.platform = platform_url.rstrip("/")
        self.headers = {"Authorization": f"Key {api_key}"}
        self.flagged_outputs = flagged_outputs

    def _request_url(self, request: ProviderRequest, upstream_id: str) -> str:
        return f"{self.base}/{app_id(request.declared(NAME).endpoint)}/requests/{upstream_id}"

    async def submit(self, request: ProviderRequest) -> str:
        route = request.declared(NAME)
        answer = await self.http.call(
            NAME,
            "POST",
            f"{self.base}/{route.endpoint.strip('/')}",
            headers=self.headers,
            json=upstream_body(route, request),
            creates=True,
        )
        self._check_submit(answer)
        body = answer.body
        return required_id(
            NAME, body.get("request_id") if isinstance(body, dict) else None, "request_id"
        )

    async def lookup(self, request: ProviderRequest) -> str | None:
        raise NotImplementedError("fal cannot look a request up by our reference")

    async def poll(self, upstream_id: str, request: ProviderRequest) -> PollResult:
        base = self._request_url(request, upstream_id)
        status = await self.http.call(NAME, "GET", f"{base}/status", headers=self.headers)
        if status.status >= 400:
            _raise_unavailable(status)
        body = status.body if isinstance(status.body, dict) else {}
        state = body.get("status")
        if state in ("IN_QUEUE", "IN_PROGRESS"):
            return PollResult("pending")
        if state != "COMPLETED":
            raise ProviderRetryable(NAME, f"unknown status {state!r}")
        if body.get("error") or body.get("error_type"):
            # COMPLETED with an error is final: fal has given up on the request.
            kind = POLICY if body.get("error_type") == POLICY else "generation_failed"
            return failed("fal", f"{body.get('error_type')}: {body.get('error')}", kind=kind)
        result = await self.http.call(
            NAME, "GET", base, headers=self.headers, unreadable_errors=True
        )
        if result.status < 400:
            return completion(
                request.declared(NAME),
                result.body,
                label="fal",
                flagged_outputs=self.flagged_outputs,
            )
        return self._failed_result(result)

    async def cancel(self, upstream_id: str, request: ProviderRequest, *, force: bool) -> bool:
        """fal removes a request still IN_QUEUE; one IN_PROGRESS only gets a signal that
        its app may ignore (https://fal.ai/docs/inference-api/queue/cancel), so without
        `force` that one is left to run: True only for a queued request fal took out."""
        base = self._request_url(request, upstream_id)
        if not force:
            status = await self.http.call(NAME, "GET", f"{base}/status", headers=self.headers)
            if status.status >= 400:
                _raise_unavailable(status)
            body = status.body if isinstance(status.body, dict) else {}
            if body.get("status") != "IN_QUEUE":
                return False
        answer = await self.http.call(
            NAME, "PUT", f"{base}/cancel", headers=self.headers, unreadable_errors=True
        )
        if answer.status in (400, 404):  # ALREADY_COMPLETED, NOT_FOUND: nothing to stop
            return False
        if answer.status >= 400:
            _raise_unavailable(answer)
        body = answer.body if isinstance(answer.body, dict) else {}
        return not force and body.get("status") == "CANCELLATION_REQUESTED"

    async def save_result(
        self, output: str, request: ProviderRequest, dest: Path, *, max_bytes: int
    ) -> None:
        await self.results.save(NAME, output, dest, max_bytes=max_bytes)

    async def check(self) -> str:
        """The account's billing record (Platform API): authenticated, creates nothing.
        It needs a key allowed to read billing; an inference-only key gets 403."""
        answer = await self.http.call(
            NAME,
            "GET",
            f"{self.platform}/account/billing?expand=credits",
            headers=self.headers,
            unreadable_errors=True,
        )
        if answer.status == 403:
            return "key accepted, but it may not read billing (an inference-only key?)"
        if answer.status >= 400:
            _raise_unavailable(answer)
        body = answer.body if isinstance(answer.body, dict) else {}
        credits = body.get("credits") or {}
        return (
            f"credentials accepted; account {body.get('username')}, balance "
            f"{credits.get('current_balance')} {credits.get('currency', 'USD')}"
        )

    def _failed_result(self, answer: Answer) -> PollResult:
        """The result of a finished request is an error."""
        retryable = answer.headers.get("x-fal-retryable")
        if retryable == "true":
            raise ProviderRetryable(NAME, f"HTTP {answer.status}: {_reason(answer.body)}")
        if answer.status == 422:
            return failed("fal", _reason(answer.body), kind=_kind(answer.body, "generation_failed"))
        if answer.status >= 500 and "x-fal-request-id" not in answer.headers and not retryable:
            # Not the request's own error (no request id): fal's ingress; ask again.
            raise ProviderRetryable(NAME, f"HTTP {answer.status}: {_reason(answer.body)}")
        if answer.status in (401, 403):
            raise ProviderAuthError(NAME, f"authentication failed ({_reason(answer.body)})")
        # A request error fal already retried (request_timeout, runner_*): final, as
        # fal-client treats a 5xx carrying x-fal-request-id.
        return failed("fal", _reason(answer.body), kind=_kind(answer.body, "generation_failed"))

    @staticmethod
    def _check_submit(answer: Answer) -> None:
        status, body = answer.status, answer.body
        if status < 400:
            return
        reason = _reason(body)
        retryable = answer.headers.get("x-fal-retryable")
        if status in (401, 403):
            raise ProviderAuthError(NAME, f"authentication failed ({reason})")
        if retryable == "true":
            raise ProviderRetryable(NAME, f"HTTP {status}: {reason}")
        if status == 429 or (status >= 500 and retryable != "false"):
            raise ProviderRetryable(NAME, f"HTTP {status}: {reason}")
        if status >= 500:
            raise ProviderDeclined(NAME, f"fal failed the request and will not retry: {reason}")
        if status == 404:
            raise ProviderMisconfigured(NAME, f"unknown endpoint ({reason})")
        raise ProviderRejected(
            NAME, f"fal refused the request: {reason}", error_type=_kind(body, "invalid_request")
        )


def _raise_unavailable(answer: Answer) -> None:
    if answer.status in (401, 403):
        raise ProviderAuthError(NAME, f"authentication failed ({_reason(answer.body)})")
    raise ProviderRetryable(NAME, f"HTTP {answer.status}: {_reason(answer.body)}")


def _kind(body: Any, otherwise: str) -> str:
    """Ours from fal's machine-readable types (`detail[].type`, or a flat `error_type`)."""
    types: list[Any] = []
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, list):
            types = [d.get("type") for d in detail if isinstance(d, dict)]
        types.append(body.get("error_type"))
    return POLICY if POLICY in types else otherwise


def _reason(body: Any) -> str:
    """fal's words for a person to read (never classified)."""
    if not isinstance(body, dict):
        return "no readable body"
    detail = body.get("detail")
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        return "; ".join(str(d.get("msg", d)) for d in detail if isinstance(d, dict))
    return str(detail or body.get("message") or body.get("error_type") or "error")
