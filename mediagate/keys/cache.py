"""Recently verified keys, kept briefly in this process so a busy client costs no database
read per request. A key revoked elsewhere is refused here within `ttl_s`; one revoked in
this process at once (`clear`)."""

import time

from mediagate.core.clock import utcnow
from mediagate.keys.service import AuthedKey, CachedKey

MAX_ENTRIES = 10_000
TOUCH_EVERY_S = 60.0


class KeyCache:
    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[float, CachedKey]] = {}
        self._touched: dict[str, float] = {}

    def get(self, key_hash: str) -> AuthedKey | None:
        if self.ttl_s <= 0:
            return None
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        stored_at, cached = entry
        if time.monotonic() - stored_at > self.ttl_s or (
            cached.expires_at is not None and cached.expires_at <= utcnow()
        ):
            del self._entries[key_hash]
            return None
        return cached.key

    def put(self, key_hash: str, cached: CachedKey) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()  # rare; refilling costs one read per key
        self._entries[key_hash] = (time.monotonic(), cached)

    def clear(self) -> None:
        self._entries.clear()

    def due_for_touch(self, key_id: str, every_s: float = TOUCH_EVERY_S) -> bool:
        """True at most once per `every_s` per key in this process: recording `last_used_at`
        then costs the submit path one statement a minute, not one per request."""
        now = time.monotonic()
        if now - self._touched.get(key_id, -every_s) < every_s:
            return False
        if len(self._touched) >= MAX_ENTRIES:
            self._touched.clear()
        self._touched[key_id] = now
        return True
