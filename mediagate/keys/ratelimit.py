"""Per-key request rate: a token bucket per key. Shared by every replica through Redis when
one is configured; in this process otherwise, and whenever Redis is unreachable."""

import time

from mediagate.core.errors import RateLimited
from mediagate.core.redis import REDIS_ERRORS, RedisLink

# One atomic step of the bucket, on Redis's clock so every replica agrees on the time.
# Returns {allowed (1|0), tokens left as a string}.
TAKE_TOKEN = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(tokens)}
"""


MAX_LOCAL_BUCKETS = 100_000
"""In-process buckets kept at most: sign-in buckets are named by whatever clients send."""


class RateLimiter:
    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        redis: RedisLink | None = None,
        *,
        max_buckets: int = MAX_LOCAL_BUCKETS,
    ) -> None:
        self.rate = rate_per_s
        self.burst = float(burst)
        self.redis = redis
        self.max_buckets = max_buckets
        self._take = redis.client.register_script(TAKE_TOKEN) if redis else None
        self._buckets: dict[str, tuple[float, float]] = {}

    async def check(self, key_id: str) -> None:
        """Take one token for `key_id`, or RateLimited with the wait until the next one."""
        if self.rate <= 0:
            return
        if self.redis is not None and self._take is not None and self.redis.available:
            try:
                allowed, tokens = await self._take(
                    keys=[f"mediagate:ratelimit:{key_id}"], args=[self.rate, self.burst]
                )
            except REDIS_ERRORS as exc:
                self.redis.failed(exc)
            else:
                if not int(allowed):
                    raise self._limited(float(tokens))
                return
        self._take_local(key_id)

    def _take_local(self, key_id: str) -> None:
        now = time.monotonic()
        if key_id not in self._buckets and len(self._buckets) >= self.max_buckets:
            self._prune(now)
        tokens, last = self._buckets.get(key_id, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[key_id] = (tokens, now)
            raise self._limited(tokens)
        self._buckets[key_id] = (tokens - 1.0, now)

    def _prune(self, now: float) -> None:
        """Forget buckets that have refilled (the same as no bucket); if that is not enough,
        the older half, so memory stays bounded whatever names clients make up."""
        full = [
            k for k, (t, at) in self._buckets.items() if t + (now - at) * self.rate >= self.burst
        ]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= self.max_buckets:
            for key in list(self._buckets)[: len(self._buckets) // 2 + 1]:
                del self._buckets[key]

    def _limited(self, tokens: float) -> RateLimited:
        return RateLimited(
            f"Rate limit exceeded: {self.rate:g} requests/s per key (burst {self.burst:g})",
            retry_after_s=(1.0 - tokens) / self.rate,
        )
