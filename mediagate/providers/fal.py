"""fal (queue.fal.run): image-to-image only.

POST /fal-ai/kling-image/o1  `Authorization: Key <key>`
     {prompt (image references as @Image1), image_urls, resolution "1K"|"2K", num_images,
      aspect_ratio, output_format}  ->  {request_id, status_url, response_url, cancel_url}
GET  status_url   {"status": "IN_QUEUE" | "IN_PROGRESS" | "COMPLETED"}
GET  response_url {"images": [{"url": ...}]}
"""

import re
from typing import Any

from mediagate.providers.base import PollResult, ProviderRequest
from mediagate.providers.errors import (
    ProviderAuthError,
    ProviderRejected,
    ProviderRetryable,
    looks_like_policy,
)
from mediagate.providers.http import ProviderHTTP, ResultFetcher, failed, image_urls, required_id

NAME = "fal"
APP = "fal-ai/kling-image"
IMAGE_REF = re.compile(r"<<<image_(\d+)>>>")


def translate_prompt(prompt: str) -> str:
    """`<<<image_1>>>` (ours, Kling's) is `@Image1` on fal."""
    return IMAGE_REF.sub(lambda m: f"@Image{m.group(1)}", prompt)


def submit_body(request: ProviderRequest) -> dict[str, Any]:
    params = request.params
    if request.type != "image-to-image":
        raise ProviderRejected(
            NAME, f"fal does not serve {request.type}", error_type="invalid_request"
        )
    return {
        "prompt": translate_prompt(params["prompt"]),
        "image_urls": params.get("images", []),
        "resolution": params.get("resolution", "1k").upper(),
        "num_images": params.get("num_images", 1),
        "aspect_ratio": params.get("aspect_ratio", "1:1"),
        "output_format": "png",
    }


class FalProvider:
    name = NAME
    supports_lookup = False
    sends_callbacks = False  # not asked for: the queue is polled

    def __init__(
        self, http: ProviderHTTP, results: ResultFetcher, *, api_key: str, base_url: str
    ) -> None:
        self.http = http
        self.results = results
        self.base = base_url.rstrip("/")
        self.headers = {"Authorization": f"Key {api_key}"}

    async def submit(self, request: ProviderRequest) -> str:
        url = f"{self.base}/{APP}/o1"
        status, body = await self.http.call_json(
            NAME,
            "POST",
            url,
            headers=self.headers,
            json=submit_body(request),
            creates=True,
        )
        self._check(status, body)
        return required_id(
            NAME, body.get("request_id") if isinstance(body, dict) else None, "request_id"
        )

    async def lookup(self, request: ProviderRequest) -> str | None:
        raise NotImplementedError("fal cannot look a request up by our reference")

    async def poll(self, upstream_id: str, request: ProviderRequest) -> PollResult:
        base = f"{self.base}/{APP}/requests/{upstream_id}"
        status, body = await self.http.call_json(
            NAME, "GET", f"{base}/status", headers=self.headers
        )
        self._check(status, body)
        state = body.get("status") if isinstance(body, dict) else None
        if state in ("IN_QUEUE", "IN_PROGRESS"):
            return PollResult("pending")
        if state != "COMPLETED":
            raise ProviderRetryable(NAME, f"unknown status {state!r}")
        status, body = await self.http.call_json(NAME, "GET", base, headers=self.headers)
        if status in (400, 422) and isinstance(body, dict):
            return failed("fal", _detail(body))
        self._check(status, body)
        urls = image_urls(body.get("images") if isinstance(body, dict) else None)
        if urls is None:
            raise ProviderRetryable(NAME, "completed without image URLs")
        return PollResult("completed", outputs=urls)

    async def fetch_result(self, output: str, request: ProviderRequest) -> bytes:
        return await self.results.fetch(NAME, output)

    @staticmethod
    def _check(status: int, body: Any) -> None:
        if status < 400:
            return
        reason = _detail(body) if isinstance(body, dict) else f"HTTP {status}"
        if status in (401, 403):
            raise ProviderAuthError(NAME, f"authentication failed ({reason})")
        if status == 429 or status >= 500:
            raise ProviderRetryable(NAME, f"HTTP {status}: {reason}")
        kind = "content_policy_violation" if looks_like_policy(reason) else "invalid_request"
        raise ProviderRejected(NAME, f"fal refused the request: {reason}", error_type=kind)


def _detail(body: dict[str, Any]) -> str:
    detail = body.get("detail")
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        return str(detail[0].get("msg", detail[0]))
    return str(detail or body.get("message") or "error")
