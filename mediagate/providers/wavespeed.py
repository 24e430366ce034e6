"""WaveSpeed v3 predictions (api.wavespeed.ai), generic: what to call and send for a model
comes from its route declaration.

POST /api/v3/{model id}?webhook=...         the route's body
GET  /api/v3/predictions/{id}/result        data.status, data.outputs, data.has_nsfw_contents
GET  /api/v3/balance                        data.balance (`mediagate providers check`)
Envelope {"code": 200, "message": "success", "data": {...}}
(https://wavespeed.ai/docs/submit-task, https://wavespeed.ai/docs/shared/submit-response,
https://wavespeed.ai/docs/docs-common-api/balance).
"""

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from mediagate.providers.base import PollResult, ProviderRequest
from mediagate.providers.errors import (
    ProviderAuthError,
    ProviderRejected,
    ProviderRetryable,
    looks_like_policy,
)
from mediagate.providers.http import ProviderHTTP, ResultFetcher, failed, required_id
from mediagate.providers.mapping import FlaggedOutputs, completion, upstream_body

NAME = "wavespeed"
PENDING = ("created", "processing")
FAILED = ("failed", "cancelled", "timeout", "deleted")
"""`failed` is documented; the official SDKs (PyPI wavespeed 2.0.5 `_wait`, npm wavespeed
0.3.2 TERMINAL_FAILURE_STATUSES) also end on cancelled, timeout and deleted."""
ACCOUNT_WORDS = ("balance", "insufficient", "credit", "quota", "top up", "recharge")
"""WaveSpeed documents no error body or code for an empty balance, so a refusal in these
words (or HTTP 402) is taken for the operator's account problem, never the user's."""


class WaveSpeedProvider:
    name = NAME
    supports_lookup = False  # no client reference: a lost submit answer needs reconciliation
    sends_callbacks = True  # ?webhook= on the submit URL

    def __init__(
        self,
        http: ProviderHTTP,
        results: ResultFetcher,
        *,
        api_key: str,
        base_url: str,
        flagged_outputs: FlaggedOutputs = "fail",
    ) -> None:
        self.http = http
        self.results = results
        self.base = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.flagged_outputs = flagged_outputs

    async def submit(self, request: ProviderRequest) -> str:
        route = request.declared(NAME)
        url = f"{self.base}/api/v3/{route.endpoint.strip('/')}"
        if request.callback_url:
            url += "?" + urlencode({"webhook": request.callback_url})
        status, body = await self.http.call_json(
            NAME,
            "POST",
            url,
            headers=self.headers,
            json=upstream_body(route, request),
            creates=True,
        )
        data = self._data(status, body)
        return required_id(NAME, data.get("id"), "task id")

    async def lookup(self, request: ProviderRequest) -> str | None:
        raise NotImplementedError("WaveSpeed cannot look a task up by our reference")

    async def poll(self, upstream_id: str, request: ProviderRequest) -> PollResult:
        url = f"{self.base}/api/v3/predictions/{upstream_id}/result"
        status, body = await self.http.call_json(NAME, "GET", url, headers=self.headers)
        data = self._data(status, body)
        state = data.get("status")
        if state in PENDING:
            return PollResult("pending")
        if state == "completed":
            return completion(
                request.declared(NAME),
                data,
                label="WaveSpeed",
                flagged_outputs=self.flagged_outputs,
            )
        if state in FAILED:
            reason = data.get("error") or f"the task ended {state}"
            return failed("WaveSpeed", reason)
        raise ProviderRetryable(NAME, f"unknown task status {state!r}")

    async def save_result(
        self, output: str, request: ProviderRequest, dest: Path, *, max_bytes: int
    ) -> None:
        await self.results.save(NAME, output, dest, max_bytes=max_bytes)

    async def check(self) -> str:
        """The account's balance: an authenticated call that creates nothing."""
        status, body = await self.http.call_json(
            NAME, "GET", f"{self.base}/api/v3/balance", headers=self.headers
        )
        data = self._data(status, body)
        return f"credentials accepted; balance {data.get('balance')} USD"

    @staticmethod
    def _data(status: int, body: Any) -> dict[str, Any]:
        code = body.get("code", status) if isinstance(body, dict) else status
        message = str(body.get("message", "")) if isinstance(body, dict) else ""
        if status in (401, 403) or code in (401, 403):
            raise ProviderAuthError(NAME, f"authentication failed ({message or status})")
        if (
            status == 402
            or code == 402
            or (400 <= status < 500 and any(w in message.lower() for w in ACCOUNT_WORDS))
        ):
            raise ProviderAuthError(NAME, f"account refused: {message or status}")
        if status == 429 or code == 429:
            raise ProviderRetryable(NAME, f"rate limited ({message})", retry_after_s=1.0)
        if status >= 500 or (isinstance(code, int) and code >= 500):
            raise ProviderRetryable(NAME, f"server error {code} ({message})")
        if status >= 400 or code != 200:
            kind = "content_policy_violation" if looks_like_policy(message) else "invalid_request"
            raise ProviderRejected(
                NAME, f"WaveSpeed refused the task: {message or code}", error_type=kind
            )
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise ProviderRetryable(NAME, "answer without data")
        return data
