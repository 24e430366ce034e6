"""Wake-up hints: a new task (or an upstream callback) starts work at once instead of at a
runner's next poll. Only hints: runners poll anyway, so a lost hint costs a poll interval.

Three carriers, all optional: the runner in this process, PostgreSQL NOTIFY (sent by the
submit transaction itself, see tasks.service.announce_new_task) and Redis pub/sub. The same
listeners, on other channels, carry "task finished" hints to waiting requests
(tasks/waiters.py): then `deliver` gets each message's payload, the task id.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from mediagate.core.redis import REDIS_ERRORS, RedisLink
from mediagate.tasks.service import NEW_TASK_CHANNEL

log = logging.getLogger("mediagate.runner")
REDIS_CHANNEL = "mediagate:wake"


class Wakeups:
    """What the API calls after committing work a runner should pick up."""

    def __init__(self, local: Callable[[], None] | None, redis: RedisLink | None) -> None:
        self.local = local
        self.redis = redis

    async def announce(self) -> None:
        if self.local is not None:
            self.local()
        if self.redis is not None:
            await self.redis.publish(REDIS_CHANNEL, "task")


class TaskListener:
    """PostgreSQL LISTEN on the channel the submit transaction NOTIFYs (or `channel`)."""

    def __init__(
        self,
        database_url: str,
        wake: Callable[[], None] | None = None,
        *,
        channel: str = NEW_TASK_CHANNEL,
        deliver: Callable[[str], None] | None = None,
    ) -> None:
        self.dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        self.wake = wake
        self.channel = channel
        self.deliver = deliver
        self.connection: asyncpg.Connection | None = None
        self.received = 0

    async def start(self) -> None:
        try:
            self.connection = await asyncpg.connect(self.dsn)
            await self.connection.add_listener(self.channel, self._on_notify)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("LISTEN %s unavailable (%s); polling only", self.channel, exc)
            self.connection = None

    def _on_notify(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self.received += 1
        if self.wake is not None:
            self.wake()
        if self.deliver is not None:
            self.deliver(payload)

    async def stop(self) -> None:
        if self.connection is not None:
            await self.connection.close()
            self.connection = None


class RedisListener:
    """Redis SUBSCRIBE, kept alive: when Redis goes away the runner polls, and the
    subscription comes back by itself when Redis does."""

    def __init__(
        self,
        redis: RedisLink,
        wake: Callable[[], None] | None = None,
        *,
        channel: str = REDIS_CHANNEL,
        deliver: Callable[[str], None] | None = None,
    ) -> None:
        self.redis = redis
        self.wake = wake
        self.channel = channel
        self.deliver = deliver
        self.received = 0
        self.subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="redis wake-ups")

    async def _run(self) -> None:
        while True:
            client = self.redis.subscriber()
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    self.subscribed.set()
                    while True:
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=5.0
                        )
                        if message is not None:
                            self._on_message(message)
            except REDIS_ERRORS as exc:
                if self.subscribed.is_set():
                    log.warning("redis wake-ups lost (%s); polling until it is back", exc)
                self.subscribed.clear()
            finally:
                await client.aclose()
            await asyncio.sleep(self.redis.retry_s)

    def _on_message(self, message: dict[str, Any]) -> None:
        self.received += 1
        if self.wake is not None:
            self.wake()
        data = message.get("data")
        if self.deliver is not None and isinstance(data, bytes):
            self.deliver(data.decode(errors="replace"))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
