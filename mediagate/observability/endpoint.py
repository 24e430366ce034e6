"""The /metrics answer (with the bearer token of MEDIAGATE_METRICS_TOKEN when it is set),
and the small HTTP server a standalone worker runs for it."""

import asyncio
import contextlib
import hmac
from collections.abc import Awaitable, Callable, Iterator

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mediagate.core.clock import utcnow
from mediagate.core.db import Database
from mediagate.core.errors import AuthenticationFailed
from mediagate.core.http import error_response
from mediagate.observability.gauges import CachedGauges, Gauges
from mediagate.observability.metrics import Metrics

WORKER_CACHE_S = 1.0


def authorized(request: Request, token: str | None) -> bool:
    if not token:
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


async def render(
    request: Request,
    metrics: Metrics,
    gauges: Callable[[], Awaitable[Gauges]],
    token: str | None,
) -> Response:
    """401 without the configured token; else the shared gauges and this process's own."""
    if not authorized(request, token):
        refused = AuthenticationFailed(
            "/metrics needs the bearer token set in MEDIAGATE_METRICS_TOKEN"
        )
        return error_response(
            refused.status,
            refused.type,
            refused.message,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    metrics.apply(await gauges(), utcnow())
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)


def worker_app(metrics: Metrics, db: Database) -> Starlette:
    cached = CachedGauges(db, WORKER_CACHE_S)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def scrape(request: Request) -> Response:
        return await render(request, metrics, cached.get, None)

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
    server = SignalFreeServer(config)
    return server, asyncio.create_task(server.serve(), name="worker metrics")


class SignalFreeServer(uvicorn.Server):
    """The worker owns SIGTERM/SIGINT (graceful stop); this server must not take them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
