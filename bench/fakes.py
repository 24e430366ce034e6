"""Fake upstreams, each run as its own process so its work is not counted against the
gateway's event loop:

    python -m bench.fakes kling --port P --latency 10    # Kling's API (tests' fake), calls back;
                                                         # GET /_bench/in-flight: tasks it holds
    python -m bench.fakes openai --port P                # OpenAI-style /v1/images/generations
"""

import argparse
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.providers.fakes import FakeState, kling_app

KLING_ACCESS = "bench-access-key"
KLING_SECRET = "bench-kling-secret-0123456789abcdefghij"
IN_FLIGHT = "/_bench/in-flight"
"""The Kling fake's count of tasks it holds: created, not done yet."""
PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def openai_app() -> Starlette:
    """An OpenAI-compatible image endpoint that answers at once with one image URL."""

    async def generate(request: Request) -> Response:
        body: dict[str, Any] = await request.json()
        port = request.url.port
        images = [
            {"url": f"http://127.0.0.1:{port}/img/{i}.png"} for i in range(int(body.get("n") or 1))
        ]
        return JSONResponse({"created": int(time.time()), "data": images})

    async def image(_: Request) -> Response:
        return Response(PNG_1X1, media_type="image/png")

    return Starlette(
        routes=[
            Route("/v1/images/generations", generate, methods=["POST"]),
            Route("/img/{name}", image),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=("kling", "openai"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=10.0)
    args = parser.parse_args()
    if args.kind == "kling":
        state = FakeState(KLING_ACCESS, latency_s=(args.latency, args.latency))
        state.base = f"http://127.0.0.1:{args.port}"
        app = kling_app(state, KLING_SECRET)

        async def in_flight(_: Request) -> Response:
            return JSONResponse({"in_flight": state.in_flight()})

        app.router.routes.append(Route(IN_FLIGHT, in_flight))
    else:
        app = openai_app()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
