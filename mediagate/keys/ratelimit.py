"""Per-key request rate: a token bucket per key, in this process."""

import time

from mediagate.core.errors import RateLimited


class RateLimiter:
    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate = rate_per_s
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, key_id: str) -> None:
        """Take one token for `key_id`, or RateLimited with the wait until the next one."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        tokens, last = self._buckets.get(key_id, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[key_id] = (tokens, now)
            raise RateLimited(
                f"Rate limit exceeded: {self.rate:g} requests/s per key (burst {self.burst:g})",
                retry_after_s=(1.0 - tokens) / self.rate,
            )
        self._buckets[key_id] = (tokens - 1.0, now)
