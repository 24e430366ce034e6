"""Reading the shared gauges, and the separate metrics port, off the serving event loop.

A `MetricsThread` runs its own event loop on its own thread, with its own database engine
(one connection). The API port's /metrics asks it for the gauges and only renders on the
serving loop; with MEDIAGATE_METRICS_PORT set, /metrics is served from that thread
altogether. A database that is in memory (a test's) cannot be opened twice, so its
gauges are read on the caller's loop instead."""

import asyncio
import socket
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvicorn
import uvloop
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mediagate.core.db import Database, sqlite_path
from mediagate.core.settings import Settings
from mediagate.observability.endpoint import SignalFreeServer, render
from mediagate.observability.gauges import CachedGauges, Gauges
from mediagate.observability.metrics import Metrics

T = TypeVar("T")


class MetricsThread:
    def __init__(self, settings: Settings, metrics: Metrics, db: Database) -> None:
        self.settings = settings
        self.metrics = metrics
        self._shared = db
        self._separate = not (
            db.url.startswith("sqlite") and sqlite_path(db.url) in ("", ":memory:")
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._db: Database | None = None
        self._gauges: CachedGauges | None = None
        self._server: uvicorn.Server | None = None
        self._serving: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if not self._separate:
            self._gauges = CachedGauges(self._shared, self.settings.metrics_cache_s)
            if self.settings.metrics_port is not None:  # a test's in-memory database
                self._server, self._serving = self._serve()
            return
        running = threading.Event()
        self._loop = uvloop.new_event_loop()
        self._thread = threading.Thread(
            target=self._run, args=(self._loop, running), name="metrics", daemon=True
        )
        self._thread.start()
        await asyncio.to_thread(running.wait)
        await self._call(self._setup())

    async def gauges(self) -> Gauges:
        """The gauges, read (or taken from the last reading) on the metrics thread."""
        if self._loop is None:
            assert self._gauges is not None, "MetricsThread not started"
            return await self._gauges.get()
        return await self._call(self._get())

    async def stop(self) -> None:
        if self._loop is None:
            await self._stop_server()
            return
        await self._call(self._teardown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        self._loop.close()
        self._loop = None

    # on the metrics thread

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop, running: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(running.set)
        loop.run_forever()

    async def _setup(self) -> None:
        self._db = Database(self._shared.url, pool_size=1, max_overflow=0, sqlite_inline=False)
        self._gauges = CachedGauges(self._db, self.settings.metrics_cache_s)
        if self.settings.metrics_port is not None:
            self._server, self._serving = self._serve()

    async def _get(self) -> Gauges:
        assert self._gauges is not None
        return await self._gauges.get()

    async def _teardown(self) -> None:
        await self._stop_server()
        if self._db is not None:
            await self._db.dispose()

    def _serve(self) -> tuple[uvicorn.Server, "asyncio.Task[None]"]:
        async def scrape(request: Request) -> Response:
            return await render(request, self.metrics, self._get, self.settings.metrics_token)

        config = uvicorn.Config(
            Starlette(routes=[Route("/metrics", scrape)]),
            access_log=False,
            log_config=None,
            lifespan="off",
        )
        server = SignalFreeServer(config)
        sock = listening_socket(self.settings.metrics_host, self.settings.metrics_port or 0)
        return server, asyncio.create_task(server.serve(sockets=[sock]), name="metrics port")

    async def _stop_server(self) -> None:
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            await self._serving
            self._server = self._serving = None

    async def _call(self, work: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self._loop))


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound with SO_REUSEPORT: every server process of `serve --workers N`
    listens on the one metrics port, and the kernel hands each scrape to one of them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"MEDIAGATE_METRICS_PORT: cannot listen on {host}:{port}: {exc}") from exc
    return sock
