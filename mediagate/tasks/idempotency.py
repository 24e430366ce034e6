"""Idempotency-Key requests being processed right now in this process.

The database row (written in the task's own transaction) is what makes replays return
the same task, across processes. This set only answers 409 to a second request with the
same key while the first is still running here, instead of queueing it behind the first.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from mediagate.core.errors import IdempotencyInProgress, InvalidRequest

MAX_KEY_LENGTH = 255


def check_key(raw: str | None) -> str | None:
    if raw is None:
        return None
    if not raw or len(raw) > MAX_KEY_LENGTH or not raw.isprintable():
        raise InvalidRequest(
            f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable characters",
            param="Idempotency-Key",
        )
    return raw


class InFlightKeys:
    def __init__(self) -> None:
        self._keys: set[tuple[str, str]] = set()

    @contextmanager
    def claim(self, account_id: str, key: str | None) -> Iterator[None]:
        if key is None:
            yield
            return
        entry = (account_id, key)
        if entry in self._keys:
            raise IdempotencyInProgress()
        self._keys.add(entry)
        try:
            yield
        finally:
            self._keys.discard(entry)
