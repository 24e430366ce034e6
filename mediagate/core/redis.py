"""Redis: optional, and never required. Every use has a way to go on without it; after a
failure we stop asking for `retry_s` rather than making each request wait on a dead server."""

import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("mediagate.redis")

# What a lost, slow or restarted Redis raises.
REDIS_ERRORS = (RedisError, OSError, TimeoutError)


class RedisLink:
    def __init__(self, url: str, *, timeout_s: float, retry_s: float) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self.client = aioredis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self.failures = 0
        self._down_until = 0.0

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def failed(self, exc: BaseException) -> None:
        """Note a failure: go on without Redis for `retry_s`, then try again."""
        if self.available:
            log.warning(
                "redis unavailable (%s: %s); going on without it for %.0f s",
                type(exc).__name__,
                exc,
                self.retry_s,
            )
        self.failures += 1
        self._down_until = time.monotonic() + self.retry_s

    def subscriber(self) -> aioredis.Redis:
        """A separate connection for a subscription: it waits on reads, so no read timeout."""
        return aioredis.from_url(self.url, socket_connect_timeout=self.timeout_s)

    async def publish(self, channel: str, message: str) -> bool:
        if not self.available:
            return False
        try:
            await self.client.publish(channel, message)
        except REDIS_ERRORS as exc:
            self.failed(exc)
            return False
        return True

    async def aclose(self) -> None:
        await self.client.aclose()
