"""OpenAI's Images API (api.openai.com) as an upstream, generic: the model and the body
for a task come from its route declaration (`endpoint` = the OpenAI model id).

POST /v1/images/generations  JSON {model, prompt, n, size, quality, ...}
POST /v1/images/edits        multipart: the same fields, plus the references as `image[]`
                             files (used when the task has reference images)
Both answer at once with the images: `{created, data: [{b64_json}], ...}`; GPT Image
models always return Base64. Auth `Authorization: Bearer <key>`. Errors
`{"error": {"message", "type", "param", "code"}}`.
Sources: https://platform.openai.com/docs/api-reference/images/create,
https://platform.openai.com/docs/api-reference/images/createEdit,
https://platform.openai.com/docs/guides/error-codes,
https://platform.openai.com/docs/guides/rate-limits (x-ratelimit-* headers);
openai-python 3.57.0 `resources/images.py` (generate, edit: `image` arrays sent as
`image[]`, `_utils/_utils.py` extract_files "brackets"), `_client.py` (status -> error
class), `_base_client.py` (`retry-after-ms`, `retry-after`).

The call is synchronous, so there is no upstream task to poll or look up. `submit` keeps
the decoded images in our storage at once ("staged", under keys derived from our task
id), and returns an upstream id naming them; `poll` answers `completed` with those keys,
and the store step mirrors them like any other result.

Replay: OpenAI cannot be asked whether it served a request, so a submit interrupted
mid-call is never sent again (that would pay twice). The replay (runner/steps.py
`submitting`) asks `staged()` whether the answer was kept before the worker died: if so
the task goes on with it; if not, it fails `needs_reconciliation` and nothing is
charged. Images are staged last-to-first, so the first one's presence means all are.
"""

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import re
import shutil
from pathlib import Path
from typing import Any

import aiohttp

from mediagate.catalog.spec import REFERENCE_PARAM, RouteTask
from mediagate.media.storage import Storage, sniffed_type
from mediagate.providers.base import PollResult, ProviderRequest
from mediagate.providers.errors import (
    ProviderAuthError,
    ProviderMisconfigured,
    ProviderRejected,
    ProviderRetryable,
    SubmitOutcomeUnknown,
    looks_like_policy,
)
from mediagate.providers.http import Answer, ProviderHTTP, retry_after
from mediagate.providers.mapping import result_urls, upstream_body

log = logging.getLogger("mediagate.providers.openai")
NAME = "openai"
STAGED_PREFIX = "staged:"
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
MAX_OUTPUTS = 10
"""`n` is 1-10 (API reference); recovery probes no further."""
POLICY_CODES = {"moderation_blocked", "content_policy_violation"}
"""`error.code` of a request the safety system refused (error-codes guide; the second is
the DALL-E spelling, still answered by the API for prompts)."""
QUOTA_CODES = {"insufficient_quota", "billing_hard_limit_reached"}
"""A 429 (or 400) about the account's money, not the rate: an operator problem."""
DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def staged_key(secret: bytes, task_id: str, index: int, extension: str) -> str:
    """Where the `index`th image of a task's answer is kept: unguessable, and the same on
    every worker, so a replay finds it."""
    digest = hmac.new(secret, f"openai-staged:{task_id}:{index}".encode(), hashlib.sha256)
    return f"{digest.hexdigest()[:40]}.{extension}"


class OpenAIImagesProvider:
    name = NAME
    supports_lookup = False  # nothing to look up: see `staged` and the module docstring
    sends_callbacks = False  # the answer carries the images

    def __init__(
        self,
        http: ProviderHTTP,
        storage: Storage,
        *,
        api_key: str,
        base_url: str,
        secret: bytes,
        timeout_s: float,
    ) -> None:
        self.http = http
        self.storage = storage
        self.base = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.secret = secret
        self.timeout_s = timeout_s

    async def submit(self, request: ProviderRequest) -> str:
        route = request.declared(NAME)
        body = {"model": route.endpoint, **upstream_body(route, request)}
        files = {name for name, f in route.fields.items() if f.source == REFERENCE_PARAM}
        json: dict[str, Any] | None = None
        form: aiohttp.FormData | None = None
        if any(body.get(name) for name in files):
            url, form = f"{self.base}/v1/images/edits", _multipart(body, files)
        else:
            url = f"{self.base}/v1/images/generations"
            json = {k: v for k, v in body.items() if k not in files}
        answer = await self.http.call(
            NAME,
            "POST",
            url,
            headers=self.headers,
            json=json,
            data=form,
            creates=True,
            unreadable_errors=True,
            timeout_s=self.timeout_s,
        )
        _check(answer)
        # Paid for from here on: nothing below may lead to the call being made again.
        images = _decoded(route, answer.body)
        try:
            extensions = await self._stage(request.reference, images)
        except Exception as exc:  # any failure to keep a paid answer: never ask again
            log.exception("task %s: could not keep OpenAI's images", request.reference)
            raise SubmitOutcomeUnknown(NAME, f"the answer could not be kept ({exc!r})") from exc
        return STAGED_PREFIX + ",".join(extensions)

    async def _stage(self, task_id: str, images: list[bytes]) -> list[str]:
        extensions = [EXTENSIONS[sniffed_type(data[:12]) or "image/png"] for data in images]
        # Last to first: the first image being there means every one is (see `staged`).
        for index in reversed(range(len(images))):
            key = staged_key(self.secret, task_id, index, extensions[index])
            await self.storage.put(key, images[index])
        return extensions

    async def staged(self, request: ProviderRequest) -> str | None:
        """The upstream id of an answer kept before the worker died, if it was."""
        extensions: list[str] = []
        for index in range(MAX_OUTPUTS):
            found = None
            for extension in EXTENSIONS.values():
                key = staged_key(self.secret, request.reference, index, extension)
                if await self._exists(key):
                    found = extension
                    break
            if found is None:
                break
            extensions.append(found)
        return STAGED_PREFIX + ",".join(extensions) if extensions else None

    async def _exists(self, key: str) -> bool:
        if self.storage.local_path(key) is not None:
            return True
        return await self.storage.get(key) is not None  # S3: rare (replays only), small

    async def lookup(self, request: ProviderRequest) -> str | None:
        raise NotImplementedError("OpenAI cannot look a request up; see `staged`")

    async def poll(self, upstream_id: str, request: ProviderRequest) -> PollResult:
        if not upstream_id.startswith(STAGED_PREFIX):
            raise ValueError(f"not an id this adapter made: {upstream_id!r}")
        extensions = upstream_id.removeprefix(STAGED_PREFIX).split(",")
        keys = [
            staged_key(self.secret, request.reference, i, ext) for i, ext in enumerate(extensions)
        ]
        return PollResult("completed", outputs=keys)

    async def save_result(
        self, output: str, request: ProviderRequest, dest: Path, *, max_bytes: int
    ) -> None:
        local = self.storage.local_path(output)
        if local is not None:
            size = local.stat().st_size
            if size <= max_bytes:
                await asyncio.to_thread(shutil.copyfile, local, dest)
                return
        else:
            data = await self.storage.get(output)
            if data is None:
                raise ProviderRejected(NAME, "the kept answer is gone", error_type="api_error")
            size = len(data)
            if size <= max_bytes:
                await asyncio.to_thread(dest.write_bytes, data)
                return
        raise ProviderRejected(
            NAME,
            f"the result is over this gateway's cap of {max_bytes:,} bytes",
            error_type="generation_failed",
        )

    async def check(self) -> str:
        """The models list: authenticated, creates nothing, costs nothing."""
        answer = await self.http.call(
            NAME, "GET", f"{self.base}/v1/models", headers=self.headers, unreadable_errors=True
        )
        _check(answer)
        models = answer.body.get("data") if isinstance(answer.body, dict) else None
        count = len(models) if isinstance(models, list) else 0
        return f"credentials accepted; {count} models visible"


def _multipart(body: dict[str, Any], files: set[str]) -> aiohttp.FormData:
    """The edits body: each reference (Base64 of our checked copy) as a file part."""
    form = aiohttp.FormData()
    for name, value in body.items():
        if name in files:
            for index, encoded in enumerate(value):
                data = base64.b64decode(encoded)
                content_type = sniffed_type(data[:12]) or "application/octet-stream"
                extension = EXTENSIONS.get(content_type, "bin")
                form.add_field(
                    name, data, filename=f"image_{index + 1}.{extension}", content_type=content_type
                )
        elif isinstance(value, bool):
            form.add_field(name, "true" if value else "false")
        else:
            form.add_field(name, str(value))
    return form


def _decoded(route: RouteTask, body: Any) -> list[bytes]:
    """The images of a 200 answer. It was paid for: a problem here fails the task, never
    asks again."""
    encoded = result_urls(route, body)
    if not encoded:
        raise ProviderRejected(
            NAME, "OpenAI answered without images", error_type="generation_failed"
        )
    images = []
    for text in encoded:
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ProviderRejected(
                NAME, "OpenAI answered with an unreadable image", error_type="generation_failed"
            ) from exc
        if sniffed_type(data[:12]) not in EXTENSIONS:
            raise ProviderRejected(
                NAME, "OpenAI answered with a non-image file", error_type="generation_failed"
            )
        images.append(data)
    return images


def _check(answer: Answer) -> None:
    """Raise the class of a refusal; return for a success."""
    status = answer.status
    if status < 400:
        return
    error = _error(answer.body)
    reason = str(error.get("message") or f"HTTP {status}")
    code = error.get("code")
    if status in (401, 403):
        raise ProviderAuthError(NAME, f"authentication failed ({reason})")
    if code in QUOTA_CODES:
        raise ProviderAuthError(NAME, f"account refused: {reason}")
    if status == 429:
        raise ProviderRetryable(NAME, f"rate limited ({reason})", retry_after_s=_wait(answer))
    if status >= 500:
        raise ProviderRetryable(NAME, f"server error ({reason})", retry_after_s=_wait(answer))
    if status == 404:
        raise ProviderMisconfigured(NAME, f"unknown model or endpoint ({reason})")
    policy = code in POLICY_CODES or looks_like_policy(reason)
    raise ProviderRejected(
        NAME,
        f"OpenAI refused the request: {reason}",
        error_type="content_policy_violation" if policy else "invalid_request",
    )


def _error(body: Any) -> dict[str, Any]:
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _wait(answer: Answer) -> float:
    """Seconds to wait: `retry-after-ms`, `retry-after` (as openai-python reads them), else
    the `x-ratelimit-reset-*` durations ("1s", "6m0s", "20ms")."""
    headers = answer.headers
    milliseconds = headers.get("retry-after-ms", "")
    try:
        if milliseconds:
            return max(float(milliseconds) / 1000, 0.0)
    except ValueError:
        pass
    if headers.get("retry-after"):
        return retry_after(headers, 1.0)
    resets = [
        _duration(headers[h])
        for h in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
        if h in headers
    ]
    return max((r for r in resets if r is not None), default=1.0)


def _duration(text: str) -> float | None:
    parts = DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        return None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in parts)
