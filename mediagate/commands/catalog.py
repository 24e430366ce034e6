"""models and providers: what this gateway serves, and through whom."""

import argparse
import asyncio
import sys

from mediagate.catalog.loader import load_catalog
from mediagate.core.db import Database
from mediagate.core.settings import Settings
from mediagate.providers.check import check_providers
from mediagate.providers.configured import ALL_LIVE, configured_names
from mediagate.providers.health import provider_status


async def cmd_providers(db: Database, settings: Settings, args: argparse.Namespace) -> None:
    live = configured_names(settings)
    async with db.read() as session:
        for name in ("sandbox", *ALL_LIVE):
            configured = name == "sandbox" or name in live
            status = await provider_status(session, name)
            breakers = ", ".join(f"{s} ({w})" for w, s in sorted(status.breakers.items()))
            tasks = ", ".join(f"{k} {n}" for k, n in sorted(status.tasks_last_hour.items()))
            print(f"{name:<10} {'configured' if configured else 'not configured':<15}")
            print(f"  breakers:  {breakers or 'no runner reported in the last 5 minutes'}")
            print(f"  errors:    {status.errors_total} since the runners started")
            print(f"  last hour: {tasks or 'no tasks'}")


def cmd_providers_check(settings: Settings, args: argparse.Namespace) -> None:
    results = asyncio.run(check_providers(settings))
    if not results:
        print("no live provider is configured (test keys use the sandbox)")
    for result in results:
        print(f"{result.provider:<10} {'ok' if result.ok else 'FAILED':<7} {result.detail}")
    if not all(r.ok for r in results):
        sys.exit(1)


def cmd_models(settings: Settings, args: argparse.Namespace) -> None:
    for model in load_catalog(settings.catalog_paths).models.values():
        prices = ", ".join(f"{t.name}: {t.price.text()}" for t in model.types.values())
        print(f"{model.id:<24} {model.name} ({prices})")
