"""serve and worker: the long-running processes."""

import argparse
import asyncio
import logging
import os
import signal
from typing import Any

import uvicorn
import uvloop

from mediagate.accounts import service as accounts
from mediagate.app import build_components, build_runner
from mediagate.catalog.loader import load_catalog
from mediagate.core.db import Database
from mediagate.core.heap import freeze_startup_objects
from mediagate.core.migrate import upgrade
from mediagate.core.serving import limited_protocol
from mediagate.core.settings import Settings
from mediagate.keys import service as keys
from mediagate.ledger import service as ledger
from mediagate.observability.endpoint import serve_worker_metrics
from mediagate.observability.metrics import Metrics

log = logging.getLogger("mediagate.cli")


def cmd_serve(settings: Settings, args: argparse.Namespace) -> None:
    overrides: dict[str, Any] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port:
        overrides["port"] = args.port
    if args.no_runner:
        overrides["embedded_runner"] = False
    settings = settings.model_copy(update=overrides)
    upgrade(settings)
    asyncio.run(_first_run(settings))
    _export(settings, overrides)
    uvicorn.run(
        "mediagate.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=args.workers,
        log_level=settings.log_level.lower(),
        access_log=False,
        log_config=None,
        http=limited_protocol(
            settings.header_timeout_s, settings.body_timeout_s, settings.max_header_bytes
        ),
        timeout_keep_alive=settings.keepalive_timeout_s,
        limit_concurrency=settings.max_connections,
    )


def _export(settings: Settings, overrides: dict[str, Any]) -> None:
    """Hand CLI overrides to the server processes (they build Settings from the environment)."""
    for name, value in overrides.items():
        os.environ[f"MEDIAGATE_{name.upper()}"] = (
            str(value).lower() if isinstance(value, bool) else str(value)
        )


async def _first_run(settings: Settings) -> None:
    """On an empty database, make a demo account with test credits and say how to use it."""
    db = Database.for_settings(settings)
    try:
        async with db.write() as session:
            if await accounts.count_accounts(session) > 0:
                return
            account, _ = await accounts.get_or_create(session, settings.demo_account)
            _, raw = await keys.create_key(
                session, settings.hmac_secret, account_id=account.id, mode="test", name="demo"
            )
            await ledger.grant(
                session, account.id, "test", settings.demo_credits, reason="demo credits"
            )
    finally:
        await db.dispose()
    base = settings.public_base_url or f"http://{settings.host}:{settings.port}"
    print(_WELCOME.format(key=raw, base=base, credits=settings.demo_credits), flush=True)


_WELCOME = """
  mediagate: first run. Created account "demo" with {credits} test credits and a test key
  (shown only this once; test keys use the built-in sandbox, no provider account needed):

    export MEDIAGATE_KEY={key}

  Generate:
    curl -s {base}/api/v1/images/generations \\
      -H "Authorization: Bearer $MEDIAGATE_KEY" -H "Content-Type: application/json" \\
      -d '{{"model": "kling-image-o1", "prompt": "A red fox in the snow", "aspect_ratio": "16:9"}}'

  Poll (use the task_id from the answer):
    curl -s {base}/api/v1/tasks/TASK_ID -H "Authorization: Bearer $MEDIAGATE_KEY"

  Dashboard, model docs and API console: {base}/  (sign up there;
  operators: mediagate admin create --email you@example.com)
"""


def cmd_worker(settings: Settings, args: argparse.Namespace) -> None:
    async def go() -> None:
        db = Database.for_settings(settings)
        components = build_components(db, settings)
        metrics = Metrics()
        runner = build_runner(
            db, settings, load_catalog(settings.catalog_paths), components, metrics
        )
        endpoint = (
            serve_worker_metrics(metrics, db, args.metrics_host, args.metrics_port)
            if args.metrics_port
            else None
        )
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        freeze_startup_objects()
        run = asyncio.create_task(runner.run())
        await stop.wait()
        log.info("stopping: finishing running steps (grace %.0f s)", args.grace)
        await runner.stop(args.grace)
        await run
        if endpoint is not None:
            server, serving = endpoint
            server.should_exit = True
            await serving
        await components.aclose()
        await db.dispose()

    uvloop.run(go())  # the loop `serve` runs on too (uvicorn picks uvloop)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> None:
    upgrade(settings)
