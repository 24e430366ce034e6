"""PostgreSQL LISTEN: new tasks wake this runner at once instead of at its next poll."""

import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from mediagate.tasks.service import NEW_TASK_CHANNEL

log = logging.getLogger("mediagate.runner")


class TaskListener:
    def __init__(self, database_url: str, wake: Callable[[], None]) -> None:
        self.dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        self.wake = wake
        self.connection: asyncpg.Connection | None = None
        self.received = 0

    async def start(self) -> None:
        try:
            self.connection = await asyncpg.connect(self.dsn)
            await self.connection.add_listener(NEW_TASK_CHANNEL, self._on_notify)
        except (OSError, asyncpg.PostgresError) as exc:
            # Only a hint: without it, new tasks wait for the next poll tick.
            log.warning("LISTEN %s unavailable (%s); polling only", NEW_TASK_CHANNEL, exc)
            self.connection = None

    def _on_notify(self, *_args: Any) -> None:
        self.received += 1
        self.wake()

    async def stop(self) -> None:
        if self.connection is not None:
            await self.connection.close()
            self.connection = None
