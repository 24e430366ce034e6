"""Kling's official API (api-singapore.klingai.com by default), generic: the path and the
body for a model come from its route declaration.

Auth: `Authorization: Bearer <JWT>`, HS256 signed with the secret key, claims
{iss: access key, exp: now+1800, nbf: now-5}; cached and refreshed before it expires.
POST {route endpoint}        the route's body + external_task_id (our task id), callback_url
GET  {route endpoint}/{id}   task_status submitted|processing|succeed|failed, task_status_msg
GET  /account/costs          resource packs (`mediagate providers check`)
Envelope {code, message, request_id, data}; code 0 is success. Error codes and their HTTP
statuses: Kling API reference, "General Information" (transcribed in
github.com/WHQ25/rawgenai docs/research/kling/common-info.md).
"""

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt

from mediagate.providers.base import PollResult, ProviderRequest
from mediagate.providers.errors import (
    ProviderAuthError,
    ProviderMisconfigured,
    ProviderRejected,
    ProviderRetryable,
)
from mediagate.providers.http import ProviderHTTP, ResultFetcher, failed, required_id
from mediagate.providers.mapping import completion, upstream_body

NAME = "kling"
TOKEN_LIFETIME_S = 1800
REFRESH_BEFORE_S = 300
AUTH_CODES = range(1000, 1005)  # 401
ACCOUNT_CODES = range(1100, 1104)  # 1100-1102 account (429), 1103 no permission (403)
PARAM_CODES = (1200, 1201)  # 400: bad parameters
SETUP_CODES = (1202, 1203, 1304)  # 404 bad method / missing resource; 429 IP whitelist
POLICY_CODES = (1300, 1301)  # 400
LIMIT_CODES = (1302, 1303)  # 429 rate, concurrency
NOT_FOUND_CODES = (1200, 1201, 1203)
"""On a lookup by our reference: Kling does not know the task (so submitting is safe)."""
DAY_MS = 86_400_000


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


class KlingProvider:
    name = NAME
    supports_lookup = True  # by external_task_id, where the route's query takes it
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

    def _url(self, request: ProviderRequest, suffix: str = "") -> str:
        return f"{self.base}/{request.declared(NAME).endpoint.strip('/')}{suffix}"

    async def submit(self, request: ProviderRequest) -> str:
        route = request.declared(NAME)
        body = upstream_body(route, request)
        body["external_task_id"] = request.reference  # unique per account (Kling docs)
        if request.callback_url:
            body["callback_url"] = request.callback_url
        status, answer = await self.http.call_json(
            NAME, "POST", self._url(request), headers=self._headers(), json=body, creates=True
        )
        try:
            data = self._data(status, answer)
        except ProviderRejected:
            # What Kling answers to a repeated external_task_id is not documented; if it
            # refuses it as a bad parameter, the task it refers to is ours: take it.
            code = answer.get("code") if isinstance(answer, dict) else None
            if route.lookup and code in PARAM_CODES:
                found = await self.lookup(request)
                if found is not None:
                    return found
            raise
        return required_id(NAME, data.get("task_id"), "task_id")

    async def lookup(self, request: ProviderRequest) -> str | None:
        status, answer = await self.http.call_json(
            NAME, "GET", self._url(request, f"/{request.reference}"), headers=self._headers()
        )
        if status == 404 or (
            isinstance(answer, dict) and answer.get("code") in NOT_FOUND_CODES and status < 500
        ):
            return None  # Kling never saw it: submitting now is safe
        data = self._data(status, answer)
        task_id = data.get("task_id")
        return task_id if isinstance(task_id, str) and task_id else None

    async def poll(self, upstream_id: str, request: ProviderRequest) -> PollResult:
        status, answer = await self.http.call_json(
            NAME, "GET", self._url(request, f"/{upstream_id}"), headers=self._headers()
        )
        data = self._data(status, answer)
        state = data.get("task_status")
        if state in ("submitted", "processing"):
            return PollResult("pending")
        if state == "succeed":
            return completion(request.declared(NAME), data, label="Kling", flagged_outputs="fail")
        if state == "failed":
            return failed("Kling", data.get("task_status_msg"))
        raise ProviderRetryable(NAME, f"unknown task_status {state!r}")

    async def save_result(
        self, output: str, request: ProviderRequest, dest: Path, *, max_bytes: int
    ) -> None:
        await self.results.save(NAME, output, dest, max_bytes=max_bytes)

    async def check(self) -> str:
        """The account's resource packs over the last day: authenticated, creates nothing."""
        now_ms = int(time.time() * 1000)
        url = f"{self.base}/account/costs?start_time={now_ms - DAY_MS}&end_time={now_ms}"
        status, answer = await self.http.call_json(NAME, "GET", url, headers=self._headers())
        data = self._data(status, answer)
        packs = data.get("resource_pack_subscribe_infos")
        count = len(packs) if isinstance(packs, list) else 0
        return f"credentials accepted; {count} resource pack(s)"

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
        if code in SETUP_CODES:
            raise ProviderMisconfigured(NAME, f"code {code}: {message}")
        if code in POLICY_CODES:
            raise ProviderRejected(
                NAME, f"Kling refused the content: {message}", error_type="content_policy_violation"
            )
        if code in LIMIT_CODES or status == 429:
            raise ProviderRetryable(NAME, f"code {code}: {message}", retry_after_s=1.0)
        if code in PARAM_CODES:
            raise ProviderRejected(
                NAME, f"Kling refused the request: {message}", error_type="invalid_request"
            )
        raise ProviderRetryable(NAME, f"code {code} (HTTP {status}): {message}")
