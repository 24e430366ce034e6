"""Fakes of the three providers' documented HTTP APIs, served for real on loopback.

They answer with the bodies the providers document (tests/providers/fixtures/*.json, each
entry naming its source) and refuse what the providers refuse (fal o1 without
image_urls, Kling multi-shot with a prompt, Kling references that are not JPG/PNG).
Where the docs are silent the behaviour is a setting (FakeState.duplicates: what Kling
answers to a repeated external_task_id), and tests run both ways.

Behaviour is chosen per task by markers in the prompt, or FakeState.always for bodies
without a prompt (multi-shot), or a wrong key:
  [fake:policy]     content-policy failure      [fake:ratelimit]  one rate-limit answer, then fine
  [fake:slow]       never finishes              [fake:malformed]  creates the task, answers garbage
  [fake:404]        result URLs that 404        [fake:5xx]        submit always 500
  [ws-down]         WaveSpeed alone answers 500 to the submit (failover tests)
  [fal-down]        fal alone answers 500 to the submit (failover to WaveSpeed)
  [ws-broke]        WaveSpeed alone refuses for the balance (FakeState.balance_refusal)
  [fake:hang]       creates the task, then holds the answer for 5 s (kill-window tests)
  [fake:forbidden]  account problem: 403 / Kling 1102 (no resource pack)
  [fake:latency]    Kling: done only 2–10 s after it was created (FakeState.latency_s; chaos)
  [fake:cancelled] [fake:timeout] [fake:deleted]   WaveSpeed: the task ends with that status
  [fake:nsfw]       WaveSpeed / fal flux: the first output is flagged unsafe
  [fake:completed-error]  fal: COMPLETED with error/error_type, the result a 500
  [fake:result-504] fal: COMPLETED, the result a request_timeout 504 with its request id
  [fake:noretry]    fal: submit 500 with X-Fal-Retryable: false
  [fake:queued]     fal: IN_QUEUE until cancelled (a cancel removes it; cancel tests)
  [fake:retry-422]  fal: one 422 with X-Fal-Retryable: true, then fine
  [fake:ip] [fake:1202] [fake:1203]   Kling: that code at its documented HTTP status
  [fake:async-policy-en] [fake:async-policy-zh]   Kling: failed later, task_status_msg
  [fake:views]      Kling multi-shot: the url_1..url_3 result shape
"""

import asyncio
import base64
import contextlib
import copy
import functools
import io
import json
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
import jwt
import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from mediagate.providers.sandbox_video import render_video

FIXTURES = Path(__file__).parent / "fixtures"


@functools.lru_cache(maxsize=8)
def _fixtures(provider: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / f"{provider}.json").read_text()))


def documented(provider: str, name: str, **values: Any) -> Any:
    """A documented body, its `{placeholders}` filled in."""
    body = copy.deepcopy(_fixtures(provider)[name]["body"])

    def fill(node: Any) -> Any:
        if isinstance(node, str):
            for k, v in values.items():
                node = node.replace("{" + k + "}", str(v))
            return node
        if isinstance(node, list):
            return [fill(n) for n in node]
        if isinstance(node, dict):
            return {k: fill(v) for k, v in node.items()}
        return node

    return fill(body)


def documented_headers(provider: str, name: str) -> dict[str, str]:
    return dict(_fixtures(provider)[name].get("headers", {}))


def sniff(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith(b"\x89PNG"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    return None


@dataclass
class FakeState:
    key: str
    base: str = ""
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    rate_limited: set[str] = field(default_factory=set)
    tokens: list[str] = field(default_factory=list)
    latency_s: tuple[float, float] = (2.0, 10.0)
    chance: random.Random = field(default_factory=lambda: random.Random(7))
    by_reference: dict[str, str] = field(default_factory=dict)
    duplicates: Literal["refuse", "existing"] = "refuse"
    """Kling's answer to a repeated external_task_id is not documented: refuse it (1201,
    HTTP 400) or answer with the task it names."""
    always: set[str] = field(default_factory=set)
    """Markers applied to every request (for bodies without a prompt)."""
    bodies: list[dict[str, Any]] = field(default_factory=list)
    """Every accepted create body, in order."""
    cancelled: list[str] = field(default_factory=list)
    balance_refusal: tuple[int, str] = (402, "Insufficient balance")
    call_delay_s: float = 0.0
    """Kling: extra time inside every query (kill-window tests)."""
    callbacks: aiohttp.ClientSession | None = None
    """Kept alive for thousands of callbacks a second (bench/inflight.py); the lean
    client, as the fake's own time counts against the gateway in bench/latency.py."""

    def callback_client(self) -> aiohttp.ClientSession:
        if self.callbacks is None:
            self.callbacks = aiohttp.ClientSession()
        return self.callbacks

    async def close(self) -> None:
        if self.callbacks is not None:
            await self.callbacks.close()
            self.callbacks = None

    def marked(self, text: str, marker: str) -> bool:
        return marker in text or marker in self.always

    def create(
        self, prompt: str, count: int, reference: str | None = None, callback: str | None = None
    ) -> str:
        task_id = f"up-{len(self.tasks) + 1}"
        self.tasks[task_id] = {
            "prompt": " ".join([prompt, *sorted(self.always)]),
            "count": count,
            "reference": reference,
            "callback": callback,
        }
        if reference is not None:
            self.by_reference[reference] = task_id
        self.calls["created"] += 1
        return task_id

    def in_flight(self) -> int:
        """Tasks created and not done yet (bench/inflight.py samples it)."""
        now = time.monotonic()
        return sum(1 for t in self.tasks.values() if t.get("ready_at", 0) > now)

    def outputs(self, task_id: str) -> list[str]:
        task = self.tasks[task_id]
        path = "missing" if "[fake:404]" in task["prompt"] else "results"
        return [f"{self.base}/{path}/{task_id}/{i}.png" for i in range(task["count"])]


@functools.lru_cache(maxsize=16)
def png(index: int) -> bytes:
    """Made once per index: a real provider serves a stored file, so rendering it on every
    download would count the fake's own work as the gateway's latency in bench/latency.py."""
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (20 * index, 90, 160)).save(out, format="PNG")
    return out.getvalue()


async def result_image(request: Request) -> Response:
    return Response(png(int(request.path_params["index"])), media_type="image/png")


def common_routes() -> list[Route]:
    return [
        Route("/results/{task_id}/{index}.png", result_image),
        Route("/missing/{task_id}/{index}.png", lambda r: PlainTextResponse("gone", 404)),
    ]


# --- WaveSpeed -----------------------------------------------------------------------

WAVESPEED_BODIES = {
    # https://wavespeed.ai/models/kwaivgi/kling-image-o1/llms.txt (+ num_images, W10)
    "kwaivgi/kling-image-o1": {"prompt", "images", "aspect_ratio", "resolution", "num_images"},
    # https://wavespeed.ai/docs/docs-api/kwaivgi/kwaivgi-kling-v1-ai-multi-shot
    "kwaivgi/kling-v1-ai-multi-shot": {"image"},
}
WAVESPEED_REQUIRED = {"kwaivgi/kling-v1-ai-multi-shot": {"image"}}
"""Required fields where they are not just the prompt."""
WAVESPEED_VIDEOS: set[str] = set()
"""Models whose outputs are videos."""
for _resolution in ("480p", "720p", "1080p"):
    # https://wavespeed.ai/models/bytedance/seedance-v1-pro-t2v-720p/llms.txt: prompt
    # (required), aspect_ratio, duration (integer 2-12), camera_fixed, seed.
    WAVESPEED_BODIES[f"bytedance/seedance-v1-pro-t2v-{_resolution}"] = {
        "prompt",
        "aspect_ratio",
        "duration",
        "camera_fixed",
        "seed",
    }
    # https://wavespeed.ai/docs/docs-api/bytedance/bytedance-seedance-v1-pro-i2v-1080p:
    # image and prompt (required), last_image, duration, aspect_ratio, camera_fixed, seed.
    i2v = f"bytedance/seedance-v1-pro-i2v-{_resolution}"
    WAVESPEED_BODIES[i2v] = {
        "prompt",
        "image",
        "last_image",
        "duration",
        "aspect_ratio",
        "camera_fixed",
        "seed",
    }
    WAVESPEED_REQUIRED[i2v] = {"prompt", "image"}
    WAVESPEED_VIDEOS |= {i2v, f"bytedance/seedance-v1-pro-t2v-{_resolution}"}

WAVESPEED_RULES: dict[str, dict[str, Any]] = {
    model: spec
    for model, spec in json.loads((FIXTURES / "wavespeed_models.json").read_text()).items()
    if not model.startswith("_")
}
"""The image models' documented inputs (fixtures/wavespeed_models.json, each naming its
page): enums, the range of each side of a `W*H` size, list fields and their length."""
for _model, _spec in WAVESPEED_RULES.items():
    WAVESPEED_BODIES[_model] = set(_spec["allowed"])
    WAVESPEED_REQUIRED[_model] = set(_spec["required"])


def wavespeed_refusal(model: str, body: dict[str, Any]) -> str | None:
    """What WaveSpeed's documented rules say is wrong with a body, if anything."""
    spec = WAVESPEED_RULES.get(model)
    if spec is None:
        return None
    for name, values in spec["enums"].items():
        if name in body and body[name] not in values:
            return f"{name} must be one of {values}"
    for name in spec["lists"]:
        if name in body and not isinstance(body[name], list):
            return f"{name} must be an array"
    for name, most in spec.get("max_items", {}).items():
        if len(body.get(name, [])) > most:
            return f"{name} takes at most {most} items"
    if "size" in body:
        low, high = spec["size_range"]
        sides = str(body["size"]).split("*")
        if len(sides) != 2 or not all(s.isdigit() and low <= int(s) <= high for s in sides):
            return f"size must be width*height, {low} ~ {high} per dimension"
    return None


def wavespeed_app(state: FakeState) -> Starlette:
    def authorized(request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {state.key}"

    def envelope(data: dict[str, Any]) -> JSONResponse:
        return JSONResponse({"code": 200, "message": "success", "data": data})

    async def submit(request: Request) -> Response:
        state.calls["submit"] += 1
        if not authorized(request):
            return JSONResponse(documented("wavespeed", "unauthorized"), 401)
        body = await request.json()
        model = f"{request.path_params['owner']}/{request.path_params['model']}"
        prompt = body.get("prompt", "")
        if state.marked(prompt, "[fake:forbidden]") or "[ws-broke]" in prompt:
            status, message = state.balance_refusal
            return JSONResponse({"code": status, "message": message}, status)
        if state.marked(prompt, "[fake:5xx]") or "[ws-down]" in prompt:
            return JSONResponse({"code": 500, "message": "internal error"}, 500)
        if "[fake:ratelimit]" in prompt and prompt not in state.rate_limited:
            state.rate_limited.add(prompt)
            return JSONResponse({"code": 429, "message": "Too many requests"}, 429)
        allowed = WAVESPEED_BODIES.get(model)
        if allowed is None:
            return JSONResponse({"code": 404, "message": f"model {model} not found"}, 404)
        required = WAVESPEED_REQUIRED.get(model, {"prompt"})
        if not set(body) <= allowed or not required <= set(body):
            return JSONResponse({"code": 400, "message": f"bad fields {sorted(body)}"}, 400)
        refusal = wavespeed_refusal(model, body)
        if refusal is not None:
            return JSONResponse({"code": 400, "message": refusal}, 400)
        state.bodies.append({"model": model, **body})
        multi = model == "kwaivgi/kling-v1-ai-multi-shot"
        task_id = state.create(
            prompt,
            4 if multi else body.get("num_images", 1),
            callback=request.query_params.get("webhook"),
        )
        state.tasks[task_id]["model"] = model
        state.tasks[task_id]["video"] = model in WAVESPEED_VIDEOS
        if "[fake:hang]" in prompt:
            await asyncio.sleep(5)
        if "[fake:malformed]" in prompt:
            return PlainTextResponse('{"code": 200, "data": {"id": ', 200)
        return JSONResponse(
            documented("wavespeed", "prediction", id=task_id, model=model, base=state.base)
        )

    async def result(request: Request) -> Response:
        state.calls["poll"] += 1
        if not authorized(request):
            return JSONResponse(documented("wavespeed", "unauthorized"), 401)
        task_id = request.path_params["task_id"]
        task = state.tasks[task_id]
        answer = documented(
            "wavespeed", "prediction", id=task_id, model=task.get("model", ""), base=state.base
        )
        data = answer["data"]
        data["status"] = "processing"
        ended = [s for s in ("cancelled", "timeout", "deleted") if f"[fake:{s}]" in task["prompt"]]
        if "[fake:slow]" in task["prompt"]:
            pass
        elif ended:
            data["status"] = ended[0]
        elif "[fake:policy]" in task["prompt"]:
            data.update(status="failed", error="Content flagged by the safety checker (policy)")
        else:
            outputs = state.outputs(task_id)
            if task.get("video"):
                outputs = [f"{state.base}/videos/{task_id}.mp4"]
            flags = [i == 0 and "[fake:nsfw]" in task["prompt"] for i in range(len(outputs))]
            data.update(status="completed", outputs=outputs, has_nsfw_contents=flags)
        return JSONResponse(answer)

    async def balance(request: Request) -> Response:
        if not authorized(request):
            return JSONResponse(documented("wavespeed", "unauthorized"), 401)
        return JSONResponse(documented("wavespeed", "balance"))

    return Starlette(
        routes=[
            *common_routes(),
            Route("/api/v3/balance", balance),
            Route("/api/v3/{owner}/{model:path}", submit, methods=["POST"]),
            Route("/videos/{task_id}.mp4", result_video),
            Route("/api/v3/predictions/{task_id}/result", result),
        ]
    )


# --- Kling official API ---------------------------------------------------------------

KLING_MODELS = ("kling-image-o1", "kling-v3-omni")  # omni-image model_name enum [K1]


KLING_VIDEO_BODIES: dict[str, dict[str, Any]] = documented("kling", "video_bodies")
"""Per video create path: required and allowed fields and enums (kling.json names the
source)."""


def kling_video_refusal(spec: dict[str, Any], body: dict[str, Any]) -> tuple[int, str] | None:
    """What Kling answers (code, message) to a video create body its docs rule out."""
    for name in spec["required"]:
        if not body.get(name):
            return 1201, f"{name} is required"
    unknown = sorted(set(body) - set(spec["allowed"]))
    if unknown:
        return 1201, f"unknown fields {unknown}"
    for name, values in spec["enums"].items():
        if name in body and body[name] not in values:
            return 1201, f"{name} must be one of {values}"
    if "image_tail" in body and body.get("mode", "std") != "pro":
        return 1201, "image_tail (first and last frame) needs mode pro"
    return None


def kling_app(state: FakeState, secret: str) -> Starlette:
    def check(request: Request) -> JSONResponse | None:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        state.tokens.append(token)
        try:
            claims = jwt.decode(token, secret, algorithms=["HS256"])
        except jwt.PyJWTError:
            return error(1000)
        if claims.get("iss") != state.key:
            return error(1002)
        return None

    def envelope(data: Any) -> JSONResponse:
        return JSONResponse({"code": 0, "message": "SUCCEED", "request_id": "req-1", "data": data})

    def error(code: int, message: str | None = None) -> JSONResponse:
        status, text = documented("kling", "errors")[str(code)]
        return JSONResponse(
            {"code": code, "message": message or text, "request_id": "req-e", "data": None}, status
        )

    async def image_format(value: Any) -> str | None:
        """The format of one reference as Kling would read it (URL or bare Base64)."""
        if not isinstance(value, str) or not value:
            return None
        if value.startswith(("http://", "https://")):
            try:
                async with state.callback_client().get(value) as answer:
                    return sniff(await answer.read()) if answer.status == 200 else "unreachable"
            except (aiohttp.ClientError, TimeoutError):
                return "unreachable"  # e.g. the gateway's public URL: not checked here
        try:
            return sniff(base64.b64decode(value, validate=True))
        except ValueError:
            return None

    async def refused_images(values: list[Any]) -> JSONResponse | None:
        for value in values:
            fmt = await image_format(value)
            if fmt not in ("jpeg", "png", "unreachable"):
                return error(1201, f"image format not supported ({fmt}); use .jpg/.jpeg/.png")
        return None

    def video_refusal(spec: dict[str, Any], body: dict[str, Any]) -> JSONResponse | None:
        refused = kling_video_refusal(spec, body)
        return None if refused is None else error(*refused)

    async def create(request: Request) -> Response:
        state.calls["submit"] += 1
        if (refused := check(request)) is not None:
            return refused
        body = await request.json()
        multi = request.url.path.endswith("ai-multi-shot")
        prompt = body.get("prompt", "")
        reference = body.get("external_task_id")
        for marker, code in (("[fake:ip]", 1304), ("[fake:1202]", 1202), ("[fake:1203]", 1203)):
            if state.marked(prompt, marker):
                return error(code)
        if state.marked(prompt, "[fake:forbidden]"):
            return error(1102)
        if state.marked(prompt, "[fake:5xx]"):
            return error(5000)
        if "[fake:ratelimit]" in prompt and prompt not in state.rate_limited:
            state.rate_limited.add(prompt)
            return error(1302)
        if "[fake:policy]" in prompt:
            return error(1301)
        video = KLING_VIDEO_BODIES.get(request.url.path)
        if video is not None:
            if (refused := video_refusal(video, body)) is not None:
                return refused
            images = [body[name] for name in ("image", "image_tail") if name in body]
        elif multi:
            # element_frontal_image (required), callback_url, external_task_id; no prompt.
            if set(body) - {"element_frontal_image", "callback_url", "external_task_id"}:
                return error(1201, f"unexpected fields {sorted(body)}")
            images = [body.get("element_frontal_image")]
            if images[0] is None:
                return error(1201, "element_frontal_image is required")
        else:
            if not prompt or body.get("model_name", "kling-image-o1") not in KLING_MODELS:
                return error(1201)
            images = [
                i.get("image") if isinstance(i, dict) else None for i in body.get("image_list", [])
            ]
        if (refused := await refused_images(images)) is not None:
            return refused
        if reference in state.by_reference:
            state.calls["duplicate"] += 1
            if state.duplicates == "refuse":
                return error(1201, "duplicate external_task_id")
            existing = state.by_reference[reference]
            return JSONResponse(documented("kling", "create", id=existing, reference=reference))
        state.bodies.append({"path": request.url.path, **body})
        task_id = state.create(
            prompt, 4 if multi else body.get("n", 1), reference, body.get("callback_url")
        )
        state.tasks[task_id]["multi"] = multi
        state.tasks[task_id]["video"] = video is not None
        if "[fake:latency]" in prompt:
            delay = state.chance.uniform(*state.latency_s)
            state.tasks[task_id]["ready_at"] = time.monotonic() + delay
            if state.tasks[task_id]["callback"]:
                call_back_later(state, state.tasks[task_id]["callback"], delay)
        if "[fake:hang]" in state.tasks[task_id]["prompt"]:
            await asyncio.sleep(5)
        if "[fake:malformed]" in state.tasks[task_id]["prompt"]:
            return PlainTextResponse("<html>502 Bad Gateway</html>", 200)
        return JSONResponse(documented("kling", "create", id=task_id, reference=reference or ""))

    async def query(request: Request) -> Response:
        state.calls["poll"] += 1
        if state.call_delay_s:
            await asyncio.sleep(state.call_delay_s)
        if (refused := check(request)) is not None:
            return refused
        key = request.path_params["task_id"]
        multi = "ai-multi-shot" in request.url.path
        # The omni-image query takes task_id or external_task_id; the multi-shot query is
        # documented with task_id only.
        task_id = key if key in state.tasks else None
        if task_id is None and not multi:
            task_id = state.by_reference.get(key)
        if task_id is None:
            return error(1203)
        task = state.tasks[task_id]
        name = "query_video" if task.get("video") else "query"
        answer = documented("kling", name, id=task_id, reference=task["reference"] or "")
        data = answer["data"]
        if "[fake:slow]" in task["prompt"] or time.monotonic() < task.get("ready_at", 0):
            return JSONResponse(answer)
        for marker in ("[fake:async-policy-en]", "[fake:async-policy-zh]"):
            if marker in task["prompt"]:
                name = marker.strip("[]").removeprefix("fake:").replace("-", "_")
                data.update(task_status="failed", task_status_msg=documented("kling", name))
                return JSONResponse(answer)
        if task.get("video"):
            url = "missing" if "[fake:404]" in task["prompt"] else "videos"
            videos = [{"id": f"v-{task_id}", "url": f"{state.base}/{url}/{task_id}.mp4"}]
            data.update(task_status="succeed", task_result={"videos": videos})
            return JSONResponse(answer)
        urls = state.outputs(task_id)
        if task.get("multi") and "[fake:views]" in task["prompt"]:
            view = documented("kling", "multi_shot_views")
            view.update(url_1=urls[0], url_2=urls[1], url_3=urls[2])
            images: list[dict[str, Any]] = [view]
        else:
            images = [{"index": i, "url": u} for i, u in enumerate(urls)]
        data.update(task_status="succeed", task_result={"images": images})
        return JSONResponse(answer)

    async def costs(request: Request) -> Response:
        if (refused := check(request)) is not None:
            return refused
        if "start_time" not in request.query_params or "end_time" not in request.query_params:
            return error(1201, "start_time and end_time are required")
        return JSONResponse(documented("kling", "costs"))

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await state.close()

    return Starlette(
        lifespan=lifespan,
        routes=[
            *common_routes(),
            Route("/account/costs", costs),
            Route("/v1/images/omni-image", create, methods=["POST"]),
            Route("/v1/images/omni-image/{task_id}", query),
            Route("/v1/general/ai-multi-shot", create, methods=["POST"]),
            Route("/v1/general/ai-multi-shot/{task_id}", query),
            *(Route(path, create, methods=["POST"]) for path in KLING_VIDEO_BODIES),
            *(Route(f"{path}/{{task_id}}", query) for path in KLING_VIDEO_BODIES),
            Route("/videos/{task_id}.mp4", result_video),
        ],
    )


def call_back_later(state: FakeState, url: str, delay_s: float) -> None:
    """Like Kling: POST to the task's callback_url once it is done."""

    async def call() -> None:
        await asyncio.sleep(delay_s)
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with state.callback_client().post(url, json={"task_status": "succeed"}) as r:
                await r.read()

    task = asyncio.get_running_loop().create_task(call())
    _pending.add(task)
    task.add_done_callback(_pending.discard)


_pending: set["asyncio.Task[None]"] = set()


# --- fal ------------------------------------------------------------------------------

FAL_ENDPOINTS: dict[str, dict[str, Any]] = {
    # @fal-ai/client endpoints.d.ts KlingImageO1Input: image_urls required, 1K|2K
    "fal-ai/kling-image/o1": {
        "required": {"prompt", "image_urls"},
        "allowed": {
            "prompt",
            "image_urls",
            "elements",
            "resolution",
            "aspect_ratio",
            "num_images",
            "output_format",
            "sync_mode",
        },
        "enums": {"resolution": ("1K", "2K")},
        "result": "result",
    },
    # https://fal.ai/models/fal-ai/flux/schnell/api
    "fal-ai/flux/schnell": {
        "required": {"prompt"},
        "allowed": {
            "prompt",
            "image_size",
            "num_inference_steps",
            "seed",
            "sync_mode",
            "num_images",
            "enable_safety_checker",
            "output_format",
            "acceleration",
        },
        "enums": {
            "image_size": (
                "square_hd",
                "square",
                "portrait_4_3",
                "portrait_16_9",
                "landscape_4_3",
                "landscape_16_9",
            ),
            "output_format": ("jpeg", "png"),
        },
        "result": "result_flux",
    },
}


# https://fal.ai/models/fal-ai/bytedance/seedance/v1/pro/{text,image}-to-video/llms.txt
_SEEDANCE = {
    "allowed": {
        "prompt",
        "aspect_ratio",
        "resolution",
        "duration",
        "camera_fixed",
        "seed",
        "enable_safety_checker",
    },
    "enums": {
        "aspect_ratio": ("21:9", "16:9", "4:3", "1:1", "3:4", "9:16", "auto"),
        "resolution": ("480p", "720p", "1080p"),
        "duration": tuple(str(n) for n in range(2, 13)),  # a string enum at fal
        "camera_fixed": (True, False),
    },
    "result": "result_seedance",
}
FAL_ENDPOINTS["fal-ai/bytedance/seedance/v1/pro/text-to-video"] = {
    **_SEEDANCE,
    "required": {"prompt"},
}
FAL_ENDPOINTS["fal-ai/bytedance/seedance/v1/pro/image-to-video"] = {
    **_SEEDANCE,
    "required": {"prompt", "image_url"},
    "allowed": {*_SEEDANCE["allowed"], "image_url"},
}


@functools.lru_cache(maxsize=1)
def mp4() -> bytes:
    """A real 2 s H.264 MP4 (made once), as a video endpoint would serve it."""
    return render_video(prompt="fake fal", aspect_ratio="16:9", resolution="480p", duration_s=2)


async def result_video(request: Request) -> Response:
    return Response(mp4(), media_type="video/mp4")


def _documented_endpoints(name: str) -> dict[str, dict[str, Any]]:
    """More endpoints' input rules, from a fixture naming each one's source."""
    raw = json.loads((FIXTURES / f"{name}.json").read_text())
    return {
        endpoint: {
            "required": set(spec["required"]),
            "allowed": set(spec["allowed"]),
            "enums": {k: tuple(v) for k, v in spec["enums"].items()},
            "result": spec.get("result", "result"),
        }
        for endpoint, spec in raw.items()
        if not endpoint.startswith("_")
    }


FAL_ENDPOINTS.update(_documented_endpoints("fal_endpoints"))


def fal_app(state: FakeState) -> Starlette:
    def authorized(request: Request) -> bool:
        return request.headers.get("authorization") == f"Key {state.key}"

    def doc(name: str, status: int, **headers: str) -> JSONResponse:
        return JSONResponse(
            documented("fal", name), status, headers={**documented_headers("fal", name), **headers}
        )

    def invalid(loc: str, msg: str, kind: str) -> JSONResponse:
        return JSONResponse(
            {"detail": [{"loc": ["body", loc], "msg": msg, "type": kind}]},
            422,
            headers={"X-Fal-Retryable": "false"},
        )

    async def submit(request: Request) -> Response:
        state.calls["submit"] += 1
        if not authorized(request):
            return JSONResponse({"detail": "Invalid key"}, 401)
        endpoint = request.path_params["endpoint"]
        spec = FAL_ENDPOINTS.get(endpoint)
        if spec is None:
            return JSONResponse({"detail": f"Application {endpoint!r} not found"}, 404)
        body = await request.json()
        prompt = body.get("prompt", "")
        if "[fake:forbidden]" in prompt:
            return JSONResponse({"detail": "User is locked. Reason: Exhausted balance."}, 403)
        if "[fake:5xx]" in prompt or "[fal-down]" in prompt:
            return doc("runner_error_500", 500)
        if "[fake:noretry]" in prompt:
            return doc("runner_error_500", 500, **{"X-Fal-Retryable": "false"})
        for marker, status, headers in (
            ("[fake:ratelimit]", 429, {}),
            ("[fake:retry-422]", 422, {"X-Fal-Retryable": "true"}),
        ):
            if marker in prompt and prompt not in state.rate_limited:
                state.rate_limited.add(prompt)
                return JSONResponse({"detail": "try again"}, status, headers=headers)
        for name in spec["required"]:
            if name not in body or body[name] in ([], ""):
                return (
                    doc("missing_image_urls_422", 422)
                    if name == "image_urls"
                    else invalid(name, "Field required", "missing")
                )
        unknown = set(body) - spec["allowed"]
        if unknown:
            return invalid(sorted(unknown)[0], "Extra inputs are not permitted", "extra_forbidden")
        for name, values in spec["enums"].items():
            if name in body and body[name] not in values:
                return invalid(name, f"Input should be one of {values}", "enum")
        if "<<<" in prompt:
            return invalid("prompt", "use @Image1 to refer to images", "value_error")
        state.bodies.append({"endpoint": endpoint, **body})
        task_id = state.create(prompt, body.get("num_images", 1))
        state.tasks[task_id]["result"] = spec["result"]
        if "[fake:malformed]" in prompt:
            return PlainTextResponse("{{{", 200)
        base = f"{state.base}/{'/'.join(endpoint.split('/')[:2])}"
        return JSONResponse(documented("fal", "submit", id=task_id, base=base))

    async def status(request: Request) -> Response:
        state.calls["poll"] += 1
        if not authorized(request):
            return JSONResponse({"detail": "Invalid key"}, 401)
        task_id = request.path_params["task_id"]
        task = state.tasks[task_id]
        base = f"{state.base}/{request.path_params['owner']}/{request.path_params['alias']}"
        if "[fake:queued]" in task["prompt"]:
            return JSONResponse(documented("fal", "status_in_queue", id=task_id, base=base))
        if "[fake:slow]" in task["prompt"]:
            return JSONResponse(documented("fal", "status_in_progress", id=task_id, base=base))
        if "[fake:completed-error]" in task["prompt"]:
            return JSONResponse(documented("fal", "status_completed_error", id=task_id, base=base))
        return JSONResponse(documented("fal", "status_completed", id=task_id, base=base))

    async def response(request: Request) -> Response:
        if not authorized(request):
            return JSONResponse({"detail": "Invalid key"}, 401)
        task_id = request.path_params["task_id"]
        task = state.tasks[task_id]
        request_id = {"x-fal-request-id": task_id}
        if "[fake:policy]" in task["prompt"]:
            return doc("policy_422", 422, **request_id)
        if "[fake:completed-error]" in task["prompt"]:
            return doc("runner_error_500", 500, **request_id)
        if "[fake:result-504]" in task["prompt"]:
            return doc("request_timeout_504", 504, **request_id)
        result = documented("fal", task["result"])
        if "video" in result:
            result["video"] = {"url": f"{state.base}/videos/{task_id}.mp4"}
            return JSONResponse(result)
        urls = state.outputs(task_id)
        result["images"] = [
            {
                "url": u,
                "content_type": "image/png",
                "file_name": f"{i}.png",
                "width": 640,
                "height": 480,
            }
            for i, u in enumerate(urls)
        ]
        if "has_nsfw_concepts" in result:
            result["has_nsfw_concepts"] = [
                i == 0 and "[fake:nsfw]" in task["prompt"] for i in range(len(urls))
            ]
        return JSONResponse(result)

    async def cancel(request: Request) -> Response:
        if not authorized(request):
            return JSONResponse({"detail": "Invalid key"}, 401)
        state.calls["cancel"] += 1
        task_id = request.path_params["task_id"]
        task = state.tasks.get(task_id)
        if task is None:
            return JSONResponse({"status": "NOT_FOUND"}, 404)
        # Queued: removed. Running: only signalled (the app may ignore it; ours does).
        # Ended (or already cancelled): nothing to cancel.
        queued, running = "[fake:queued]" in task["prompt"], "[fake:slow]" in task["prompt"]
        if task.get("cancelled") or not (queued or running):
            return JSONResponse(documented("fal", "cancel_already_completed"), 400)
        state.cancelled.append(task_id)
        task["cancelled"] = queued
        return JSONResponse(documented("fal", "cancel"), 202)

    async def billing(request: Request) -> Response:
        if not authorized(request):
            return JSONResponse({"detail": "Invalid key"}, 401)
        return JSONResponse(documented("fal", "billing"))

    return Starlette(
        routes=[
            *common_routes(),
            Route("/videos/{task_id}.mp4", result_video),
            Route("/v1/account/billing", billing),
            Route("/{owner}/{alias}/requests/{task_id}/status", status),
            Route("/{owner}/{alias}/requests/{task_id}/cancel", cancel, methods=["PUT"]),
            Route("/{owner}/{alias}/requests/{task_id}", response),
            Route("/{endpoint:path}", submit, methods=["POST"]),
        ]
    )


@contextmanager
def serve(app: Starlette, state: FakeState) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "fake provider did not start"
        time.sleep(0.02)
    state.base = f"http://127.0.0.1:{port}"
    try:
        yield state.base
    finally:
        server.should_exit = True
        thread.join(10)
