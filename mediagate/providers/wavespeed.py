"""WaveSpeed (api.wavespeed.ai): the provider the reference service uses.

POST /api/v3/kwaivgi/kling-image-o1          {prompt, images, aspect_ratio, resolution, num_images}
POST /api/v3/kwaivgi/kling-v1-ai-multi-shot  {image}
GET  /api/v3/predictions/{id}/result         data.status: created|processing|completed|failed
Envelope {"code": 200, "message": "success", "data": {...}}.
"""

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

NAME = "wavespeed"
ENDPOINTS = {
    "image-to-image": "kwaivgi/kling-image-o1",
    "ai-multi-shot": "kwaivgi/kling-v1-ai-multi-shot",
}


def submit_body(request: ProviderRequest) -> dict[str, Any]:
    """Our params to WaveSpeed's: the same names and values, by design of both APIs."""
    params = request.params
    if request.type == "ai-multi-shot":
        return {"image": params["images"][0]}
    return {
        "prompt": params["prompt"],
        "images": params.get("images", []),
        "aspect_ratio": params.get("aspect_ratio", "1:1"),
        "resolution": params.get("resolution", "1k"),
        "num_images": params.get("num_images", 1),
    }


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
    ) -> None:
        self.http = http
        self.results = results
        self.base = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"}

    async def submit(self, request: ProviderRequest) -> str:
        url = f"{self.base}/api/v3/{ENDPOINTS[request.type]}"
        if request.callback_url:
            url += "?" + urlencode({"webhook": request.callback_url})
        status, body = await self.http.call_json(
            NAME,
            "POST",
            url,
            headers=self.headers,
            json=submit_body(request),
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
        if state in ("created", "processing"):
            return PollResult("pending")
        if state == "completed":
            outputs = data.get("outputs")
            if not isinstance(outputs, list) or not all(isinstance(u, str) for u in outputs):
                raise ProviderRetryable(NAME, "completed without a list of outputs")
            return PollResult("completed", outputs=list(outputs))
        if state == "failed":
            return failed("WaveSpeed", data.get("error"))
        raise ProviderRetryable(NAME, f"unknown task status {state!r}")

    async def fetch_result(self, output: str, request: ProviderRequest) -> bytes:
        return await self.results.fetch(NAME, output)

    @staticmethod
    def _data(status: int, body: Any) -> dict[str, Any]:
        code = body.get("code", status) if isinstance(body, dict) else status
        message = str(body.get("message", "")) if isinstance(body, dict) else ""
        if status in (401, 403) or code in (401, 403):
            raise ProviderAuthError(NAME, f"authentication failed ({message or status})")
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
