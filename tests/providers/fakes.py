"""Fakes of the three providers' documented HTTP APIs, served for real on loopback.

Behaviour is chosen per task by markers in the prompt (or a wrong key):
  [fake:policy]     content-policy failure      [fake:ratelimit]  one rate-limit answer, then fine
  [fake:slow]       never finishes              [fake:malformed]  creates the task, answers garbage
  [fake:404]        result URLs that 404        [fake:5xx]        submit always 500
  [ws-down]         WaveSpeed alone answers 500 to the submit (failover tests)
  [fake:hang]       creates the task, then holds the answer for 5 s (kill-window tests)
  [fake:forbidden]  account problem: 403 / Kling 1102 (no resource pack)
  [fake:latency]    Kling: done only 2–10 s after it was created (FakeState.latency_s; chaos)
"""

import asyncio
import contextlib
import functools
import io
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jwt
import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


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

    def create(
        self, prompt: str, count: int, reference: str | None = None, callback: str | None = None
    ) -> str:
        task_id = f"up-{len(self.tasks) + 1}"
        self.tasks[task_id] = {
            "prompt": prompt,
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


def wavespeed_app(state: FakeState) -> Starlette:
    def authorized(request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {state.key}"

    async def submit(request: Request) -> Response:
        state.calls["submit"] += 1
        if not authorized(request):
            return JSONResponse({"code": 401, "message": "Unauthorized: invalid API key"}, 401)
        body = await request.json()
        multi = request.path_params["model"] == "kling-v1-ai-multi-shot"
        prompt = body.get("prompt", "")
        if "[fake:forbidden]" in prompt:
            return JSONResponse({"code": 403, "message": "Forbidden: insufficient balance"}, 403)
        if "[fake:5xx]" in prompt or "[ws-down]" in prompt:
            return JSONResponse({"code": 500, "message": "internal error"}, 500)
        if "[fake:ratelimit]" in prompt and prompt not in state.rate_limited:
            state.rate_limited.add(prompt)
            return JSONResponse({"code": 429, "message": "Too many requests"}, 429)
        if not multi and set(body) != {
            "prompt",
            "images",
            "aspect_ratio",
            "resolution",
            "num_images",
        }:
            return JSONResponse({"code": 400, "message": f"bad fields {sorted(body)}"}, 400)
        task_id = state.create(
            prompt, 4 if multi else body["num_images"], callback=request.query_params.get("webhook")
        )
        if "[fake:hang]" in prompt:
            await asyncio.sleep(5)
        if "[fake:malformed]" in prompt:
            return PlainTextResponse('{"code": 200, "data": {"id": ', 200)
        return JSONResponse(
            {"code": 200, "message": "success", "data": {"id": task_id, "status": "created"}}
        )

    async def result(request: Request) -> Response:
        state.calls["poll"] += 1
        if not authorized(request):
            return JSONResponse({"code": 401, "message": "Unauthorized"}, 401)
        task = state.tasks[request.path_params["task_id"]]
        task_id = request.path_params["task_id"]
        data: dict[str, Any] = {"id": task_id, "status": "processing", "outputs": []}
        if "[fake:slow]" in task["prompt"]:
            pass
        elif "[fake:policy]" in task["prompt"]:
            data.update(status="failed", error="Content flagged by the safety checker (policy)")
        else:
            data.update(status="completed", outputs=state.outputs(task_id))
        return JSONResponse({"code": 200, "message": "success", "data": data})

    return Starlette(
        routes=[
            Route("/api/v3/kwaivgi/{model}", submit, methods=["POST"]),
            Route("/api/v3/predictions/{task_id}/result", result),
            *common_routes(),
        ]
    )


# --- Kling official API ---------------------------------------------------------------


def kling_app(state: FakeState, secret: str) -> Starlette:
    def check(request: Request) -> JSONResponse | None:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        state.tokens.append(token)
        try:
            claims = jwt.decode(token, secret, algorithms=["HS256"])
        except jwt.PyJWTError:
            return JSONResponse(
                {"code": 1000, "message": "authorization failed", "request_id": "r"}, 401
            )
        if claims.get("iss") != state.key:
            return JSONResponse(
                {"code": 1002, "message": "access key not found", "request_id": "r"}, 401
            )
        return None

    def envelope(
        data: Any, code: int = 0, message: str = "SUCCEED", status: int = 200
    ) -> JSONResponse:
        return JSONResponse(
            {"code": code, "message": message, "request_id": "req-1", "data": data}, status
        )

    async def create(request: Request) -> Response:
        state.calls["submit"] += 1
        if (refused := check(request)) is not None:
            return refused
        body = await request.json()
        multi = request.url.path.endswith("ai-multi-shot")
        prompt = body.get("prompt", "")
        reference = body.get("external_task_id")
        if "[fake:forbidden]" in prompt:
            return envelope(None, 1102, "resource pack exhausted", 403)
        if "[fake:5xx]" in prompt:
            return envelope(None, 5000, "server internal error", 500)
        if "[fake:ratelimit]" in prompt and prompt not in state.rate_limited:
            state.rate_limited.add(prompt)
            return envelope(None, 1302, "rate limit exceeded", 429)
        if "[fake:policy]" in prompt:
            return envelope(None, 1301, "content safety check failed", 400)
        if not multi and ("aspect_ratio" not in body or body.get("model_name") != "kling-image-o1"):
            return envelope(None, 1201, "invalid parameters", 400)
        if reference in state.by_reference:
            state.calls["duplicate"] += 1
            return envelope(None, 1201, "duplicate external_task_id", 400)
        task_id = state.create(
            prompt, 4 if multi else body["n"], reference, body.get("callback_url")
        )
        if "[fake:latency]" in prompt:
            delay = state.chance.uniform(*state.latency_s)
            state.tasks[task_id]["ready_at"] = time.monotonic() + delay
            if state.tasks[task_id]["callback"]:
                call_back_later(state, state.tasks[task_id]["callback"], delay)
        if "[fake:hang]" in prompt:
            await asyncio.sleep(5)
        if "[fake:malformed]" in prompt:
            return PlainTextResponse("<html>502 Bad Gateway</html>", 200)
        return envelope({"task_id": task_id, "task_status": "submitted"})

    async def query(request: Request) -> Response:
        state.calls["poll"] += 1
        if (refused := check(request)) is not None:
            return refused
        key = request.path_params["task_id"]
        task_id = key if key in state.tasks else state.by_reference.get(key)
        if task_id is None:
            return envelope(None, 1203, "task not found", 404)
        task = state.tasks[task_id]
        data: dict[str, Any] = {"task_id": task_id, "task_status": "processing"}
        if "[fake:slow]" not in task["prompt"] and time.monotonic() >= task.get("ready_at", 0):
            data.update(
                task_status="succeed",
                task_result={
                    "images": [{"index": i, "url": u} for i, u in enumerate(state.outputs(task_id))]
                },
            )
        return envelope(data)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await state.close()

    return Starlette(
        lifespan=lifespan,
        routes=[
            Route("/v1/images/omni-image", create, methods=["POST"]),
            Route("/v1/images/omni-image/{task_id}", query),
            Route("/v1/general/ai-multi-shot", create, methods=["POST"]),
            Route("/v1/general/ai-multi-shot/{task_id}", query),
            *common_routes(),
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


def fal_app(state: FakeState) -> Starlette:
    def authorized(request: Request) -> bool:
        return request.headers.get("authorization") == f"Key {state.key}"

    async def submit(request: Request) -> Response:
        state.calls["submit"] += 1
        if not authorized(request):
            return JSONResponse({"detail": "Invalid key"}, 401)
        body = await request.json()
        prompt = body["prompt"]
        if "[fake:forbidden]" in prompt:
            return JSONResponse({"detail": "User is locked: exhausted balance"}, 403)
        if "[fake:5xx]" in prompt:
            return JSONResponse({"detail": "Internal Server Error"}, 500)
        if "[fake:ratelimit]" in prompt and prompt not in state.rate_limited:
            state.rate_limited.add(prompt)
            return JSONResponse({"detail": "Rate limit exceeded"}, 429)
        if body.get("resolution") not in ("1K", "2K") or "<<<" in prompt:
            return JSONResponse({"detail": [{"msg": "invalid input"}]}, 422)
        task_id = state.create(prompt, body["num_images"])
        if "[fake:malformed]" in prompt:
            return PlainTextResponse("{{{", 200)
        base = f"{state.base}/fal-ai/kling-image/requests/{task_id}"
        return JSONResponse(
            {
                "request_id": task_id,
                "status_url": f"{base}/status",
                "response_url": base,
                "cancel_url": f"{base}/cancel",
            }
        )

    async def status(request: Request) -> Response:
        state.calls["poll"] += 1
        if not authorized(request):
            return JSONResponse({"detail": "Invalid key"}, 401)
        task = state.tasks[request.path_params["task_id"]]
        return JSONResponse(
            {"status": "IN_PROGRESS" if "[fake:slow]" in task["prompt"] else "COMPLETED"}
        )

    async def response(request: Request) -> Response:
        task_id = request.path_params["task_id"]
        if "[fake:policy]" in state.tasks[task_id]["prompt"]:
            return JSONResponse({"detail": [{"msg": "content policy violation detected"}]}, 422)
        return JSONResponse(
            {"images": [{"url": u, "content_type": "image/png"} for u in state.outputs(task_id)]}
        )

    return Starlette(
        routes=[
            Route("/fal-ai/kling-image/o1", submit, methods=["POST"]),
            Route("/fal-ai/kling-image/requests/{task_id}/status", status),
            Route("/fal-ai/kling-image/requests/{task_id}", response),
            *common_routes(),
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
