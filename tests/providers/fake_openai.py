"""A fake of OpenAI's Images API (generations and edits), served for real on loopback.

It answers synchronously with the bodies OpenAI documents (tests/providers/fixtures/
openai.json, each entry naming its source): the images as `data[].b64_json`, rendered at
the requested size and format. It refuses what OpenAI refuses: a wrong key (401), an
unknown model (404), a field the endpoint does not take (400 unknown_parameter: edits
have no `moderation`), a value outside the documented enums (400 invalid_value).

Behaviour per request is chosen by markers in the prompt:
  [fake:policy]     400 moderation_blocked        [fake:quota]     429 insufficient_quota
  [fake:ratelimit]  one 429 (x-ratelimit-reset-requests: FakeOpenAI.reset), then fine
  [fake:5xx]        always 500                    [fake:empty]     200 with no images
  [fake:garbled]    200 with a body that is not JSON
  [fake:slow]       holds the answer for FakeOpenAI.delay_s, then answers
"""

import asyncio
import base64
import io
import json
from dataclasses import dataclass, field
from typing import Any

from PIL import Image
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.providers.fakes import FakeState, documented, documented_headers, sniff

MODELS = {"gpt-image-1.5", "gpt-image-1-mini"}
# openai-python 3.57.0 resources/images.py: generate() and edit() keyword arguments.
COMMON = {
    "model",
    "prompt",
    "n",
    "size",
    "quality",
    "background",
    "output_format",
    "output_compression",
    "user",
    "safety_identifier",
}
GENERATION_FIELDS = COMMON | {"moderation"}
EDIT_FIELDS = COMMON | {"image", "image[]", "mask", "input_fidelity"}
ENUMS = {
    "size": ("1024x1024", "1536x1024", "1024x1536", "auto"),
    "quality": ("low", "medium", "high", "auto"),
    "background": ("transparent", "opaque", "auto"),
    "output_format": ("png", "jpeg", "webp"),
    "moderation": ("low", "auto"),
    "input_fidelity": ("low", "high"),
}
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


@dataclass
class FakeOpenAI(FakeState):
    delay_s: float = 0.0
    """How long a [fake:slow] request is held before its answer."""
    reset: str = "20ms"
    headers: list[dict[str, str]] = field(default_factory=list)
    """The headers of every images request, in order."""
    edits: list[dict[str, Any]] = field(default_factory=list)
    """Every accepted edit: its fields and its files as (name, content type, sniffed)."""


def rendered(size: str, fmt: str, index: int) -> str:
    width, height = (1024, 1024) if size == "auto" else map(int, size.split("x"))
    out = io.BytesIO()
    Image.new("RGB", (width, height), (30 * index % 256, 120, 200)).save(
        out, format=PIL_FORMATS[fmt]
    )
    return base64.b64encode(out.getvalue()).decode()


def openai_app(state: FakeOpenAI) -> Starlette:
    def error(name: str, **values: Any) -> JSONResponse:
        status = {"invalid_api_key": 401, "model_not_found": 404, "server_error": 500}.get(name)
        if name in ("rate_limit_exceeded", "insufficient_quota"):
            status = 429
        headers = {k: v.format(**values) for k, v in documented_headers("openai", name).items()}
        return JSONResponse(documented("openai", name, **values), status or 400, headers=headers)

    def refused(fields: dict[str, Any], allowed: set[str]) -> JSONResponse | None:
        for name in fields:
            if name not in allowed:
                return error("unknown_parameter", param=name)
        if fields.get("model") not in MODELS:
            return error("model_not_found", model=fields.get("model"))
        for name, values in ENUMS.items():
            if name in fields and fields[name] not in values:
                supported = ", ".join(f"'{v}'" for v in values)
                return error("invalid_value", value=fields[name], param=name, supported=supported)
        n = int(fields.get("n", 1))
        if not 1 <= n <= 10:
            return error("invalid_value", value=n, param="n", supported="1 to 10")
        return None

    async def answer(request: Request, fields: dict[str, Any], kind: str) -> Response:
        prompt = str(fields.get("prompt", ""))
        state.calls[kind] += 1
        state.bodies.append(fields)
        if state.marked(prompt, "[fake:slow]"):
            await asyncio.sleep(state.delay_s)
        if state.marked(prompt, "[fake:policy]"):
            return error("moderation_blocked")
        if state.marked(prompt, "[fake:quota]"):
            return error("insufficient_quota")
        if state.marked(prompt, "[fake:5xx]"):
            return error("server_error")
        if state.marked(prompt, "[fake:ratelimit]") and prompt not in state.rate_limited:
            state.rate_limited.add(prompt)
            return error("rate_limit_exceeded", reset=state.reset)
        if state.marked(prompt, "[fake:garbled]"):
            return PlainTextResponse("<html>upstream proxy error</html>", 200)
        state.calls["answered"] += 1
        body = documented("openai", "images_response")
        fmt = str(fields.get("output_format", "png"))
        size = str(fields.get("size", "auto"))
        count = 0 if state.marked(prompt, "[fake:empty]") else int(fields.get("n", 1))
        body["data"] = [{"b64_json": rendered(size, fmt, i)} for i in range(count)]
        body.update(output_format=fmt, size="1024x1024" if size == "auto" else size)
        return JSONResponse(body)

    def authorized(request: Request) -> bool:
        state.headers.append({k.lower(): v for k, v in request.headers.items()})
        return request.headers.get("authorization") == f"Bearer {state.key}"

    def wrong_key(request: Request) -> JSONResponse:
        given = request.headers.get("authorization", "").removeprefix("Bearer ")
        return error("invalid_api_key", key=given[:3] + "*" * 4)

    async def generations(request: Request) -> Response:
        if not authorized(request):
            return wrong_key(request)
        if not request.headers.get("content-type", "").startswith("application/json"):
            return error("invalid_value", value="content-type", param=None, supported="JSON")
        fields = json.loads(await request.body())
        return refused(fields, GENERATION_FIELDS) or await answer(request, fields, "generations")

    async def edits(request: Request) -> Response:
        if not authorized(request):
            return wrong_key(request)
        fields: dict[str, Any] = {}
        files: list[tuple[str, str, str | None]] = []
        async with request.form() as form:
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    data = await value.read()
                    files.append((name, value.content_type or "", sniff(data)))
                else:
                    fields[name] = value
        problem = refused({**fields, **{name: None for name, _, _ in files}}, EDIT_FIELDS)
        if problem is not None:
            return problem
        if not files or any(kind not in ("png", "jpeg", "webp") for _, _, kind in files):
            return error("invalid_value", value="image", param="image", supported="png, webp, jpg")
        state.edits.append({"fields": fields, "files": files})
        return await answer(request, fields, "edits")

    async def models(request: Request) -> Response:
        if not authorized(request):
            return wrong_key(request)
        return JSONResponse(documented("openai", "models_list"))

    return Starlette(
        routes=[
            Route("/v1/images/generations", generations, methods=["POST"]),
            Route("/v1/images/edits", edits, methods=["POST"]),
            Route("/v1/models", models),
        ]
    )
