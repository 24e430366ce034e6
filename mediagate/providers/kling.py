"""Kling's official API (api-singapore.klingai.com by default).

Auth: `Authorization: Bearer <JWT>`, HS256 signed with the secret key, claims
{iss: access key, exp: now+1800, nbf: now-5}; cached and refreshed before it expires.
POST /v1/images/omni-image      {model_name, prompt, image_list, resolution, n, aspect_ratio,
                                 external_task_id}
GET  /v1/images/omni-image/{id} (our external_task_id works too: safe lookup after a crash)
POST /v1/general/ai-multi-shot  {element_frontal_image, external_task_id}
Envelope {code, message, request_id, data}; code 0 is success.
"""

import time
from collections.abc import Callable
from typing import Any

import jwt

from mediagate.providers.base import PollResult, ProviderRequest
from mediagate.providers.errors import (
    ProviderAuthError,
    ProviderRejected,
    ProviderRetryable,
)
from mediagate.providers.http import ProviderHTTP, ResultFetcher, failed, image_urls, required_id

NAME = "kling"
TOKEN_LIFETIME_S = 1800
REFRESH_BEFORE_S = 300
PATHS = {"image-to-image": "/v1/images/omni-image", "ai-multi-shot": "/v1/general/ai-multi-shot"}
AUTH_CODES = range(1000, 1005)
ACCOUNT_CODES = range(1100, 1104)
REQUEST_CODES = range(1200, 1204)
POLICY_CODES = (1300, 1301)
LIMIT_CODES = (1302, 1303)
SERVER_CODES = range(5000, 5003)


Clock = Callable[[], float]


class KlingToken:
    """The JWT Kling wants, reused until it is close to expiry."""

    def __init__(self, access_key: str, secret_key: str, clock: Clock | None = None) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.clock = clock or time.time
        self._token: str | None = None
        self._expires = 0.0

    def get(self) -> str:
        now = self.clock()
        if self._token is None or now >= self._expires - REFRESH_BEFORE_S:
            expires = int(now) + TOKEN_LIFETIME_S
            claims = {"iss": self.access_key, "exp": expires, "nbf": int(now) - 5}
            self._token = jwt.encode(
                claims, self.secret_key, algorithm="HS256", headers={"typ": "JWT"}
            )
            self._expires = expires
        return self._token


def submit_body(request: ProviderRequest) -> dict[str, Any]:
    params = request.params
    if request.type == "ai-multi-shot":
        body: dict[str, Any] = {"element_frontal_image": params["images"][0]}
    else:
        body = {
            "model_name": "kling-image-o1",
            "prompt": params["prompt"],  # Kling spells image references <<<image_1>>> like us
            "image_list": [{"image": url} for url in params.get("images", [])],
            "resolution": params.get("resolution", "1k"),
            "n": params.get("num_images", 1),
            # Always explicit: Kling's own default is auto.
            "aspect_ratio": params.get("aspect_ratio", "1:1"),
        }
    body["external_task_id"] = request.reference
    if request.callback_url:
        body["callback_url"] = request.callback_url
    return body


class KlingProvider:
    name = NAME
    supports_lookup = True  # GET by external_task_id
    sends_callbacks = True  # callback_url in the create body

    def __init__(
        self,
        http: ProviderHTTP,
        results: ResultFetcher,
        *,
        token: KlingToken,
        base_url: str,
    ) -> None:
        self.http = http
        self.results = results
        self.token = token
        self.base = base_url.rstrip("/")

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token.get()}"}

    async def submit(self, request: ProviderRequest) -> str:
        url = f"{self.base}{PATHS[request.type]}"
        body = submit_body(request)
        status, answer = await self.http.call_json(
            NAME, "POST", url, headers=self._headers(), json=body, creates=True
        )
        data = self._data(status, answer)
        return required_id(NAME, data.get("task_id"), "task_id")

    async def lookup(self, request: ProviderRequest) -> str | None:
        url = f"{self.base}{PATHS[request.type]}/{request.reference}"
        status, answer = await self.http.call_json(NAME, "GET", url, headers=self._headers())
        if status == 404 or (
            isinstance(answer, dict) and answer.get("code") in REQUEST_CODES and status < 500
        ):
            return None  # Kling never saw it: submitting now is safe
        data = self._data(status, answer)
        task_id = data.get("task_id")
        return task_id if isinstance(task_id, str) and task_id else None

    async def poll(self, upstream_id: str, request: ProviderRequest) -> PollResult:
        url = f"{self.base}{PATHS[request.type]}/{upstream_id}"
        status, answer = await self.http.call_json(NAME, "GET", url, headers=self._headers())
        data = self._data(status, answer)
        state = data.get("task_status")
        if state in ("submitted", "processing"):
            return PollResult("pending")
        if state == "succeed":
            urls = image_urls((data.get("task_result") or {}).get("images"))
            if urls is None:
                raise ProviderRetryable(NAME, "succeeded without image URLs")
            return PollResult("completed", outputs=urls)
        if state == "failed":
            return failed("Kling", data.get("task_status_msg"))
        raise ProviderRetryable(NAME, f"unknown task_status {state!r}")

    async def fetch_result(self, output: str, request: ProviderRequest) -> bytes:
        return await self.results.fetch(NAME, output)

    @staticmethod
    def _data(status: int, answer: Any) -> dict[str, Any]:
        if not isinstance(answer, dict):
            raise ProviderRetryable(NAME, f"unexpected answer (HTTP {status})")
        code, message = answer.get("code"), str(answer.get("message", ""))
        if code == 0 and status < 400:
            data = answer.get("data")
            if not isinstance(data, dict):
                raise ProviderRetryable(NAME, "answer without data")
            return data
        if code in AUTH_CODES or code in ACCOUNT_CODES or status == 401:
            raise ProviderAuthError(NAME, f"code {code}: {message}")
        if code in POLICY_CODES:
            raise ProviderRejected(
                NAME, f"Kling refused the content: {message}", error_type="content_policy_violation"
            )
        if code in LIMIT_CODES or status == 429:
            raise ProviderRetryable(NAME, f"code {code}: {message}", retry_after_s=1.0)
        if code in REQUEST_CODES:
            raise ProviderRejected(
                NAME, f"Kling refused the request: {message}", error_type="invalid_request"
            )
        raise ProviderRetryable(NAME, f"code {code} (HTTP {status}): {message}")
