"""Replicate predictions (api.replicate.com), generic: the model and its input for a task
come from the route declaration (`endpoint = "owner/name"`).

POST /v1/models/{owner}/{name}/predictions  {input, webhook, webhook_events_filter}
GET  /v1/predictions/{id}                   starting | processing | succeeded | failed | canceled
POST /v1/predictions/{id}/cancel
GET  /v1/account                            (`mediagate providers check`)
Auth `Authorization: Bearer <token>`. Errors are RFC 7807 problem details
({title, detail, status}, application/problem+json). No `Prefer: wait`: we poll.
Output files are deleted an hour after the prediction; the store step copies them at once.
Sources: https://replicate.com/docs/reference/http; replicate-python 1.0.7
(`replicate/model.py` ModelsPredictions.create, `replicate/prediction.py`,
`replicate/exceptions.py` ReplicateError, `replicate/client.py` RetryTransport);
https://replicate.com/docs/topics/predictions/lifecycle,
https://replicate.com/docs/topics/predictions/rate-limits,
https://replicate.com/docs/topics/predictions/data-retention,
https://replicate.com/docs/topics/webhooks/setup-webhook.
"""

from pathlib import Path
from typing import Any

from mediagate.providers.base import PollResult, ProviderRequest
from mediagate.providers.errors import (
    ProviderAuthError,
    ProviderMisconfigured,
    ProviderRejected,
    ProviderRetryable,
    looks_like_policy,
)
from mediagate.providers.http import (
    Answer,
    ProviderHTTP,
    ResultFetcher,
    failed,
    required_id,
    retry_after,
)
from mediagate.providers.mapping import FlaggedOutputs, completion, result_urls, upstream_body

NAME = "replicate"
PENDING = ("starting", "processing")
WEBHOOK_EVENTS = ["completed"]
"""Only the terminal event (succeeded, failed or canceled): a callback only makes the next
poll due, so start/output/logs events would be noise."""


class ReplicateProvider:
    name = NAME
    # A prediction carries no client reference of ours and cannot be looked up by one
    # (the list endpoint filters only by time and source), so a lost create answer needs
    # reconciliation rather than a second, paid prediction.
    supports_lookup = False
    sends_callbacks = True  # `webhook` in the create body, when we have a public URL

    def __init__(
        self,
        http: ProviderHTTP,
        results: ResultFetcher,
        *,
        api_token: str,
        base_url: str,
        flagged_outputs: FlaggedOutputs = "fail",
    ) -> None:
        self.http = http
        self.results = results
        self.base = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_token}"}
        self.flagged_outputs = flagged_outputs

    async def submit(self, request: ProviderRequest) -> str:
        route = request.declared(NAME)
        body: dict[str, Any] = {"input": upstream_body(route, request)}
        if request.callback_url:
            body["webhook"] = request.callback_url
            body["webhook_events_filter"] = WEBHOOK_EVENTS
        answer = await self.http.call(
            NAME,
            "POST",
            f"{self.base}/v1/models/{route.endpoint.strip('/')}/predictions",
            headers=self.headers,
            json=body,
            creates=True,
            unreadable_errors=True,
        )
        _check(answer, creating=True)
        prediction = answer.body if isinstance(answer.body, dict) else {}
        return required_id(NAME, prediction.get("id"), "prediction id")

    async def lookup(self, request: ProviderRequest) -> str | None:
        raise NotImplementedError("Replicate cannot look a prediction up by our reference")

    async def poll(self, upstream_id: str, request: ProviderRequest) -> PollResult:
        answer = await self.http.call(
            NAME,
            "GET",
            f"{self.base}/v1/predictions/{upstream_id}",
            headers=self.headers,
            unreadable_errors=True,
        )
        _check(answer, creating=False)
        prediction = answer.body if isinstance(answer.body, dict) else {}
        state = prediction.get("status")
        if state in PENDING:
            return PollResult("pending")
        if state == "succeeded":
            route = request.declared(NAME)
            if not result_urls(route, prediction):
                # Final at Replicate: asking again would only wait for the deadline.
                paths = ", ".join(route.results) or "none declared"
                return failed(
                    "Replicate",
                    f"the prediction succeeded without files at the route's results ({paths})",
                    kind="generation_failed",
                )
            return completion(
                route, prediction, label="Replicate", flagged_outputs=self.flagged_outputs
            )
        if state == "failed":
            return failed("Replicate", prediction.get("error"))
        if state == "canceled":
            # Not by us (after our cancel the task has ended, and is not polled again):
            # someone canceled it on Replicate's side, so nothing was produced.
            return failed(
                "Replicate", "the prediction was canceled at Replicate", kind="generation_failed"
            )
        raise ProviderRetryable(NAME, f"unknown prediction status {state!r}")

    async def cancel(self, upstream_id: str, request: ProviderRequest, *, force: bool) -> bool:
        """Replicate stops a prediction in any state and answers with it: `canceled`
        confirms the stop (it bills the run time so far, which we bear, not the user);
        a prediction that had already ended keeps its final status."""
        answer = await self.http.call(
            NAME,
            "POST",
            f"{self.base}/v1/predictions/{upstream_id}/cancel",
            headers=self.headers,
            unreadable_errors=True,
        )
        _check(answer, creating=False)
        prediction = answer.body if isinstance(answer.body, dict) else {}
        return prediction.get("status") == "canceled"

    async def save_result(
        self, output: str, request: ProviderRequest, dest: Path, *, max_bytes: int
    ) -> None:
        await self.results.save(NAME, output, dest, max_bytes=max_bytes)

    async def check(self) -> str:
        """The token's account: an authenticated call that creates nothing."""
        answer = await self.http.call(
            NAME, "GET", f"{self.base}/v1/account", headers=self.headers, unreadable_errors=True
        )
        _check(answer, creating=False)
        account = answer.body if isinstance(answer.body, dict) else {}
        return f"credentials accepted; account {account.get('username')} ({account.get('type')})"


def _check(answer: Answer, *, creating: bool) -> None:
    """Raise the class of a refusal; return for a success."""
    status = answer.status
    if status < 400:
        return
    reason = _reason(answer.body, status)
    if status in (401, 403):
        raise ProviderAuthError(NAME, f"authentication failed ({reason})")
    if status == 402:  # Payment Required: the account's credit, not the user's request
        raise ProviderAuthError(NAME, f"account refused: {reason}")
    if status == 429:
        # https://replicate.com/docs/topics/predictions/rate-limits; the body's "Expected
        # available in N second" is prose, the Retry-After header is what clients honour.
        raise ProviderRetryable(
            NAME, f"rate limited ({reason})", retry_after_s=retry_after(answer.headers, 1.0)
        )
    if status >= 500:
        raise ProviderRetryable(NAME, f"server error ({reason})")
    if status == 404:
        what = "unknown model" if creating else "unknown prediction"
        raise ProviderMisconfigured(NAME, f"{what} ({reason})")
    kind = "content_policy_violation" if looks_like_policy(reason) else "invalid_request"
    raise ProviderRejected(NAME, f"Replicate refused the prediction: {reason}", error_type=kind)


def _reason(body: Any, status: int) -> str:
    """Replicate's words (problem details `title` and `detail`) for a person to read."""
    if not isinstance(body, dict):
        return f"HTTP {status}"
    title, detail = body.get("title"), body.get("detail")
    if title and detail:
        return f"{title}: {detail}"
    return str(detail or title or f"HTTP {status}")
