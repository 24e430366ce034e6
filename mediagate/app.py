"""The app factory: `create_app(settings)` wires every domain; the lifespan owns resources."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from mediagate import __version__
from mediagate.accounts.routes import router as account_router
from mediagate.catalog.loader import load_catalog
from mediagate.catalog.routes import router as catalog_router
from mediagate.core.db import Database
from mediagate.core.http import RequestIdMiddleware, install_error_handlers
from mediagate.core.logs import configure_logging
from mediagate.core.settings import Settings
from mediagate.core.state import CoreState
from mediagate.keys.ratelimit import RateLimiter
from mediagate.media.routes import router as files_router
from mediagate.media.storage import LocalStorage
from mediagate.providers.registry import ProviderRegistry
from mediagate.providers.sandbox import SandboxProvider
from mediagate.runner.runner import Runner
from mediagate.tasks.idempotency import InFlightKeys
from mediagate.tasks.routes import build_router as build_task_router

log = logging.getLogger("mediagate")


def build_providers(db: Database, settings: Settings) -> ProviderRegistry:
    sandbox = SandboxProvider(
        db, latency_s=settings.sandbox_latency_s, call_delay_s=settings.sandbox_call_delay_s
    )
    # Live adapters (WaveSpeed, Kling, fal) register here when configured (issue 4).
    return ProviderRegistry(sandbox, live={})


def build_runner(db: Database, settings: Settings) -> Runner:
    """A runner for `mediagate worker`: everything it needs, nothing of the HTTP app."""
    return Runner(
        db,
        settings,
        catalog=load_catalog(settings.catalog_paths),
        providers=build_providers(db, settings),
        storage=LocalStorage(settings.files_dir),
    )


def create_app(settings: Settings) -> FastAPI:
    catalog = load_catalog(settings.catalog_paths)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.db_url)
        core = CoreState(settings=settings, db=db, catalog=catalog)
        app.state.core = core
        app.state.storage = LocalStorage(settings.files_dir)
        app.state.providers = build_providers(db, settings)
        app.state.rate_limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
        app.state.idempotency = InFlightKeys()
        runner: Runner | None = None
        runner_task: asyncio.Task[None] | None = None
        if settings.embedded_runner:
            runner = Runner(
                db,
                settings,
                catalog=catalog,
                providers=app.state.providers,
                storage=app.state.storage,
            )
            runner_task = asyncio.create_task(runner.run(), name="runner")
        app.state.runner = runner
        app.state.wake = runner.wake if runner else (lambda: None)
        try:
            yield
        finally:
            if runner is not None and runner_task is not None:
                await runner.stop()
                await runner_task
            await db.dispose()

    app = FastAPI(
        title="mediagate",
        version=__version__,
        description="One REST API for generative media models.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(build_task_router(catalog))
    app.include_router(catalog_router)
    app.include_router(account_router)
    app.include_router(files_router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` (each server process builds its own Settings)."""
    settings = Settings()
    configure_logging(settings.log_level)
    return create_app(settings)
