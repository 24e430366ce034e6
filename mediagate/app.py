"""The app factory: `create_app(settings)` wires every domain; the lifespan owns resources."""

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import certifi
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import SQLAlchemyError
from starlette.middleware.trustedhost import TrustedHostMiddleware

from mediagate import __version__
from mediagate.accounts import low_balance
from mediagate.accounts.passwords import Passwords
from mediagate.accounts.routes import router as account_router
from mediagate.accounts.totp import SecretBox
from mediagate.billing import admin as billing_admin
from mediagate.billing import routes as billing_routes
from mediagate.billing.reconciler import BillingReconciler
from mediagate.billing.state import build_billing
from mediagate.catalog.loader import Catalog, load_catalog
from mediagate.catalog.routes import router as catalog_router
from mediagate.core.bodies import BodyLimitMiddleware, body_caps
from mediagate.core.db import Database
from mediagate.core.errors import NotFound
from mediagate.core.heap import freeze_startup_objects
from mediagate.core.http import RequestIdMiddleware, install_error_handlers
from mediagate.core.logs import configure_logging
from mediagate.core.migrate import current_revisions, head_revisions
from mediagate.core.redis import RedisLink
from mediagate.core.schemas import finish_openapi
from mediagate.core.settings import Settings
from mediagate.core.state import CoreState
from mediagate.keys.cache import KeyCache
from mediagate.keys.ratelimit import RateLimiter
from mediagate.mail.outbox import build_outbox
from mediagate.media.fetcher import FetchPolicy, SafeFetcher, allow_list
from mediagate.media.references import ReferenceLoader
from mediagate.media.routes import router as files_router
from mediagate.media.storage import Storage, build_storage
from mediagate.media.uploads import router as uploads_router
from mediagate.observability.endpoint import render as render_metrics
from mediagate.observability.metrics import Metrics
from mediagate.observability.offloop import MetricsThread
from mediagate.openai_compat.errors import openai_body_error
from mediagate.openai_compat.routes import router as openai_router
from mediagate.providers.callbacks import router as callbacks_router
from mediagate.providers.configured import build_registry, keep_alive_pool, provider_client
from mediagate.providers.http import ProviderHTTP
from mediagate.providers.registry import ProviderRegistry
from mediagate.runner.runner import Runner
from mediagate.runner.wakeups import PgNotifier, RedisListener, TaskListener, Wakeups
from mediagate.tasks.idempotency import InFlightKeys
from mediagate.tasks.routes import build_router as build_task_router
from mediagate.tasks.service import FINISHED_CHANNEL, REDIS_FINISHED_CHANNEL
from mediagate.tasks.waiters import TaskWaiters
from mediagate.web import admin as web_admin
from mediagate.web import apidocs as web_apidocs
from mediagate.web import auth as web_auth
from mediagate.web import pages as web_pages
from mediagate.web import password_reset, profile_email, verify_email
from mediagate.web import profile as web_profile
from mediagate.web import task_pages as web_task_pages
from mediagate.web import two_factor as web_two_factor
from mediagate.web.auth_limits import AuthLimits
from mediagate.web.error_pages import error_page
from mediagate.web.security import LoginRequired
from mediagate.webhooks.service import CallbackSender

log = logging.getLogger("mediagate")
STATIC = Path(web_pages.__file__).parent / "static"
EXAMPLE_IMAGES = STATIC / "examples"
"""The docs' example images: served under /static/examples/, read from here as references."""


@dataclass
class Components:
    """What both `serve` and `worker` need, built once per process."""

    storage: Storage
    fetcher: SafeFetcher
    references: ReferenceLoader
    providers: ProviderRegistry
    provider_client: ProviderHTTP
    callbacks: CallbackSender
    redis: RedisLink | None

    async def aclose(self) -> None:
        await self.fetcher.aclose()
        await self.provider_client.aclose()
        if self.redis is not None:
            await self.redis.aclose()


def own_origins(settings: Settings) -> set[str]:
    """Origins of our own file URLs, so uploads are read from storage, not over HTTP."""
    origins = {f"http://{h}:{settings.port}" for h in (settings.host, "127.0.0.1", "localhost")}
    origins.update(filter(None, (settings.public_base_url, settings.files_base_url)))
    return origins


def build_components(db: Database, settings: Settings) -> Components:
    storage = build_storage(settings)
    fetcher = SafeFetcher(
        FetchPolicy(
            deadline_s=settings.fetch_deadline_s,
            ports=frozenset(settings.fetch_ports),
            allow_private=allow_list(settings.fetch_allow_private_hosts),
        ),
        verify=trust(settings),
        limits=keep_alive_pool(settings.runner_concurrency),
    )
    client = provider_client(settings)
    providers = build_registry(db, settings, storage, fetcher, client)
    references = ReferenceLoader(fetcher, storage, own_origins(settings), EXAMPLE_IMAGES)
    callbacks = CallbackSender(db, fetcher, retry_base_s=settings.callback_retry_base_s)
    redis = (
        RedisLink(
            settings.redis_url, timeout_s=settings.redis_timeout_s, retry_s=settings.redis_retry_s
        )
        if settings.redis_url
        else None
    )
    return Components(storage, fetcher, references, providers, client, callbacks, redis)


def trust(settings: Settings) -> ssl.SSLContext:
    """Public CAs (certifi), plus the operator's own if configured."""
    context = ssl.create_default_context(cafile=certifi.where())
    if settings.fetch_ca_file:
        context.load_verify_locations(cafile=str(settings.fetch_ca_file))
    return context


def build_runner(
    db: Database,
    settings: Settings,
    catalog: Catalog,
    components: Components,
    metrics: Metrics | None = None,
    waiters: TaskWaiters | None = None,
) -> Runner:
    return Runner(
        db,
        settings,
        catalog=catalog,
        providers=components.providers,
        storage=components.storage,
        references=components.references,
        callbacks=components.callbacks,
        metrics=metrics,
        redis=components.redis,
        on_finished=waiters.finished if waiters is not None else None,
    )


@asynccontextmanager
async def task_waiters(
    db: Database, settings: Settings, redis: RedisLink | None
) -> AsyncIterator[TaskWaiters]:
    """Waiting requests, with one listener per carrier of "task finished" hints."""
    waiters = TaskWaiters(db, recheck_s=settings.wait_recheck_s)
    listeners: list[TaskListener | RedisListener] = []
    if db.engine.dialect.name == "postgresql":
        listeners.append(TaskListener(db.url, channel=FINISHED_CHANNEL, deliver=waiters.finished))
    if redis is not None:
        listeners.append(
            RedisListener(redis, channel=REDIS_FINISHED_CHANNEL, deliver=waiters.finished)
        )
    await waiters.start()
    for listener in listeners:
        await listener.start()
    try:
        yield waiters
    finally:
        for listener in listeners:
            await listener.stop()
        await waiters.stop()


def create_app(settings: Settings, *, server_process: bool = False) -> FastAPI:
    """The app; `server_process` when it is the process's whole life (`mediagate serve`)."""
    catalog = load_catalog(settings.catalog_paths)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database.for_settings(settings)
        app.state.core = CoreState(settings=settings, db=db, catalog=catalog)
        components = build_components(db, settings)
        app.state.components = components
        app.state.storage = components.storage
        app.state.providers = components.providers
        app.state.rate_limiter = RateLimiter(
            settings.rate_limit_per_s, settings.rate_limit_burst, components.redis
        )
        app.state.idempotency = InFlightKeys()
        app.state.key_cache = KeyCache(settings.key_cache_s)
        app.state.auth_limits = AuthLimits(settings, components.redis)
        app.state.passwords = Passwords(settings.password_hash_threads)
        app.state.totp_box = SecretBox(settings.hmac_secret)
        app.state.outbox = outbox = build_outbox(settings)
        resources = AsyncExitStack()
        runner: Runner | None = None
        runner_task: asyncio.Task[None] | None = None
        app.state.metrics = Metrics()
        app.state.metrics_thread = MetricsThread(settings, app.state.metrics, db)
        await app.state.metrics_thread.start()
        resources.push_async_callback(app.state.metrics_thread.stop)
        waiters = await resources.enter_async_context(task_waiters(db, settings, components.redis))
        app.state.waiters = waiters
        if settings.embedded_runner:
            runner = build_runner(db, settings, catalog, components, app.state.metrics, waiters)
            runner_task = asyncio.create_task(runner.run(), name="runner")
        app.state.runner = runner
        notifier = PgNotifier(db.url) if db.engine.dialect.name == "postgresql" else None
        if notifier is not None:
            resources.push_async_callback(notifier.close)
        app.state.wakeups = Wakeups(runner.wake if runner else None, components.redis, notifier)
        app.state.billing = billing = build_billing(settings, components.redis)
        reconciling = (
            asyncio.create_task(BillingReconciler(db, billing.payments, settings, outbox).run())
            if billing.payments is not None and settings.billing_reconcile_interval_s > 0
            else None
        )
        alerting = (
            asyncio.create_task(low_balance.watch(db, outbox, settings), name="low-balance")
            if settings.low_balance_check_interval_s > 0
            else None
        )
        if server_process:
            freeze_startup_objects()
        try:
            yield
        finally:
            for background in (reconciling, alerting):
                if background is not None:
                    background.cancel()
                    await asyncio.gather(background, return_exceptions=True)
            await billing.aclose()
            await outbox.aclose()
            if runner is not None and runner_task is not None:
                await runner.stop()
                await runner_task
            app.state.passwords.close()
            await resources.aclose()
            await components.aclose()
            await db.dispose()

    app = FastAPI(
        title="mediagate",
        version=__version__,
        description="One REST API for generative media models.",
        lifespan=lifespan,
        docs_url=None,  # web.apidocs serves /docs from our own origin, not a CDN
        redoc_url=None,
        # A trailing-slash redirect is built from the request's Host header: answer 404
        # instead, so no client-given Host ever comes back to a client in a Location.
        redirect_slashes=False,
    )
    generated_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        return app.openapi_schema or finish_openapi(generated_openapi())

    app.openapi = openapi  # type: ignore[method-assign]
    install_error_handlers(app, error_page)
    app.add_middleware(
        BodyLimitMiddleware, caps=body_caps(settings), shapes=(("/v1/", openai_body_error),)
    )
    app.add_middleware(RequestIdMiddleware)
    if settings.allowed_hosts:  # outermost: another Host is refused before anything runs
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts)
    app.include_router(build_task_router(catalog))
    app.include_router(catalog_router)
    app.include_router(account_router)
    app.include_router(files_router)
    app.include_router(uploads_router)
    app.include_router(callbacks_router)
    app.include_router(openai_router)
    app.include_router(web_auth.router)
    app.include_router(web_two_factor.router)
    app.include_router(web_profile.router)
    for router in (password_reset.router, verify_email.router, profile_email.router):
        app.include_router(router)
    app.include_router(web_pages.router)
    app.include_router(web_task_pages.router)
    app.include_router(web_admin.router)
    for router in (billing_routes.pages, billing_routes.api, billing_admin.router):
        app.include_router(router)
    app.include_router(web_apidocs.router)
    app.mount("/static", StaticFiles(directory=STATIC), "static")

    @app.exception_handler(LoginRequired)
    async def _sign_in_first(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse("/login", status_code=303)

    heads = head_revisions(settings)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        """The process is up."""
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        """The database answers and its schema is the one this code expects."""
        try:
            async with request.app.state.core.db.read() as session:
                connection = await session.connection()
                current = await connection.run_sync(current_revisions)
        except (OSError, SQLAlchemyError) as exc:
            return JSONResponse(
                {"status": "unavailable", "reason": f"database: {type(exc).__name__}"}, 503
            )
        if current != heads:
            reason = f"migrations: database at {sorted(current)}, code expects {sorted(heads)}"
            return JSONResponse({"status": "unavailable", "reason": reason}, 503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """The gauges are read on the metrics thread, off this loop (observability/offloop.py);
        with MEDIAGATE_METRICS_PORT set they are served there instead."""
        if settings.metrics_port is not None:
            raise NotFound()
        state = request.app.state
        return await render_metrics(
            request, state.metrics, state.metrics_thread.gauges, settings.metrics_token
        )

    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` (each server process builds its own Settings)."""
    settings = Settings()
    configure_logging(settings.log_level)
    return create_app(settings, server_process=True)
