"""Wake-up hints: a new task (or an upstream callback) starts work at once instead of at a
runner's next poll. Only hints: runners poll anyway, so a lost hint costs a poll interval.

Three carriers, all optional: the runner in this process, PostgreSQL NOTIFY (PgNotifier:
after the submit's commit, one at a time, coalesced) and Redis pub/sub. The same
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

    def __init__(
        self,
        local: Callable[[], None] | None,
        redis: RedisLink | None,
        postgres: "PgNotifier | None" = None,
    ) -> None:
        self.local = local
        self.redis = redis
        self.postgres = postgres

    async def announce(self) -> None:
        if self.local is not None:
            self.local()
        if self.postgres is not None:
            self.postgres.notify()
        if self.redis is not None:
            await self.redis.publish(REDIS_CHANNEL, "task")


class PgNotifier:
    """NOTIFY the new-task channel after the submit committed, coalesced.

    The submit used to NOTIFY inside its own transaction (issue 18): one more round trip
    with the account row locked, and PostgreSQL serialises the commits of notifying
    transactions on its notification queue (+20 % submit throughput without it). Here a
    hint costs the submit nothing: `notify` only marks one as wanted; one task per process
    sends NOTIFY on a connection of its own (autocommit, no lock held), and every hint
    asked for while one is on the wire is covered by the single next one. A listener woken
    once claims every due task, so one NOTIFY per burst is enough; if the connection is
    down, runners poll."""

    def __init__(self, database_url: str, channel: str = NEW_TASK_CHANNEL) -> None:
        self.dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        self.channel = channel
        self.sent = 0
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._connection: asyncpg.Connection | None = None
        self._closing = False

    def notify(self) -> None:
        self._wanted.set()
        if self._task is None and not self._closing:
            self._task = asyncio.create_task(self._send_loop(), name="pg notify")

    async def _send_loop(self) -> None:
        while not self._closing:
            await self._wanted.wait()
            self._wanted.clear()
            if self._closing:
                break
            try:
                if self._connection is None or self._connection.is_closed():
                    self._connection = await asyncpg.connect(self.dsn)
                await self._connection.execute(f"NOTIFY {self.channel}")
                self.sent += 1
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("NOTIFY %s failed (%s); runners poll", self.channel, exc)
                self._connection = None
                await asyncio.sleep(1.0)  # do not spin while PostgreSQL is away
        if self._connection is not None:
            with contextlib.suppress(OSError, asyncpg.PostgresError):
                await self._connection.close()
            self._connection = None

    async def close(self) -> None:
        """Let a NOTIFY on the wire finish (cancelling asyncpg mid-connect leaves a
        half-open protocol behind), then close the connection."""
        self._closing = True
        self._wanted.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=5)
            except TimeoutError:
                log.warning("NOTIFY %s still on the wire at shutdown", self.channel)
            self._task = None


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
