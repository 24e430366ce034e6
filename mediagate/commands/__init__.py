"""The server command line's commands, one module per area, imported only by the command
that runs (so `mediagate --help` and `mediagate keys list` do not load the web app)."""

import argparse
import asyncio
from collections.abc import Awaitable, Callable

from mediagate.core.db import Database
from mediagate.core.settings import Settings

Command = Callable[[Database, Settings, argparse.Namespace], Awaitable[None]]


def in_database(command: Command) -> Callable[[Settings, argparse.Namespace], None]:
    def run(settings: Settings, args: argparse.Namespace) -> None:
        async def go() -> None:
            db = Database.for_settings(settings)
            try:
                await command(db, settings, args)
            finally:
                await db.dispose()

        asyncio.run(go())

    return run
