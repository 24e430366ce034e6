"""A circuit breaker per provider: after `threshold` failures in a row it opens and the
provider is skipped for `cooldown_s`; then one trial call decides (half-open)."""

import time
from dataclasses import dataclass


@dataclass
class Breaker:
    threshold: int = 3
    cooldown_s: float = 30.0
    failures: int = 0
    opened_at: float | None = None
    errors_total: int = 0

    def allows(self) -> bool:
        if self.opened_at is None:
            return True
        return time.monotonic() - self.opened_at >= self.cooldown_s  # half-open: one trial

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None

    def record_failure(self) -> None:
        self.failures += 1
        self.errors_total += 1
        if self.failures >= self.threshold:
            self.opened_at = time.monotonic()

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self.allows() else "open"
