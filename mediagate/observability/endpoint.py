"""The /metrics answer, and the small HTTP server a standalone worker runs for it."""

import asyncio
import contextlib
from collections.abc import Iterator

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mediagate.core.db import Database
from mediagate.observability.metrics import Metrics


async def metrics_response(metrics: Metrics, db: Database) -> Response:
    async with db.read() as session:
        await metrics.refresh(session)
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)


def worker_app(metrics: Metrics, db: Database) -> Starlette:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def scrape(_: Request) -> Response:
        return await metrics_response(metrics, db)

    return Starlette(routes=[Route("/healthz", healthz), Route("/metrics", scrape)])


def serve_worker_metrics(
    metrics: Metrics, db: Database, host: str, port: int
) -> tuple[uvicorn.Server, "asyncio.Task[None]"]:
    """Start serving /metrics and /healthz in this event loop; stop with `should_exit`."""
    config = uvicorn.Config(
        worker_app(metrics, db),
        host=host,
        port=port,
        access_log=False,
        log_config=None,
        lifespan="off",
    )
    server = _SignalFreeServer(config)
    return server, asyncio.create_task(server.serve(), name="worker metrics")


class _SignalFreeServer(uvicorn.Server):
    """The worker owns SIGTERM/SIGINT (graceful stop); this server must not take them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
