"""Requests waiting for a task to end (`Prefer: wait=N`, the OpenAI door's synchronous
answer), woken by "task finished" hints instead of each polling the database.

A waiting request costs one asyncio.Event in a dict, shared by every request waiting on
the same task: nothing runs while it waits. Three things set the events:
- the runner in this process, when it finishes a task (`finished`);
- a hint from another process (PostgreSQL NOTIFY on service.FINISHED_CHANNEL, sent by
  the finishing transaction itself, and Redis pub/sub on REDIS_FINISHED_CHANNEL), turned into
  wake-ups by one listener per process (runner/wakeups.py);
- a slow safety re-check, for hints that were lost (a listener reconnecting, Redis
  down, SQLite with a separate worker): one batched read of every waited-on task, every
  `recheck_s`, and only while someone waits.
A woken request re-reads its task, so a spurious wake-up costs one read, never a wrong
answer.
"""

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from sqlalchemy import select

from mediagate.core.db import Database
from mediagate.tasks.models import Task

log = logging.getLogger("mediagate.tasks")
RECHECK_BATCH = 500
"""Task ids per re-check statement (well under every driver's parameter limit)."""


@dataclass
class _Waiting:
    event: asyncio.Event = field(default_factory=asyncio.Event)
    count: int = 0


class TaskWaiters:
    """The tasks this process has requests waiting on, by id."""

    def __init__(self, db: Database, *, recheck_s: float) -> None:
        self.db = db
        self.recheck_s = recheck_s
        self._waiting: dict[str, _Waiting] = {}
        self._someone_waits = asyncio.Event()
        self._recheck: asyncio.Task[None] | None = None
        self.rechecks = 0
        """Batched re-checks run (tests and the bench read it)."""

    def __len__(self) -> int:
        return len(self._waiting)

    @contextlib.contextmanager
    def watch(self, task_id: str) -> Iterator[asyncio.Event]:
        """An event set when the task may have ended. Watch BEFORE reading the task's
        status, so an end between the read and the wait still wakes the waiter."""
        entry = self._waiting.get(task_id)
        if entry is None:
            entry = self._waiting[task_id] = _Waiting()
            self._someone_waits.set()
        entry.count += 1
        try:
            yield entry.event
        finally:
            entry.count -= 1
            if entry.count == 0 and self._waiting.get(task_id) is entry:
                del self._waiting[task_id]

    def finished(self, task_id: str) -> None:
        """A hint that the task has ended (from any carrier; duplicates are harmless)."""
        entry = self._waiting.pop(task_id, None)
        if entry is not None:
            entry.event.set()

    def finished_many(self, task_ids: Iterable[str]) -> None:
        for task_id in task_ids:
            self.finished(task_id)

    async def start(self) -> None:
        self._recheck = asyncio.create_task(self._recheck_loop(), name="task waiters re-check")

    async def stop(self) -> None:
        if self._recheck is not None:
            self._recheck.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recheck
            self._recheck = None
        for entry in self._waiting.values():
            entry.event.set()  # let waiting requests answer with what they have
        self._waiting.clear()

    async def _recheck_loop(self) -> None:
        while True:
            if not self._waiting:
                self._someone_waits.clear()
                await self._someone_waits.wait()
            await asyncio.sleep(self.recheck_s)
            try:
                self.finished_many(await self._ended(list(self._waiting)))
            except Exception:
                log.exception("re-checking waited-on tasks failed; trying again later")
            self.rechecks += 1

    async def _ended(self, task_ids: list[str]) -> list[str]:
        ended: list[str] = []
        async with self.db.read() as session:
            for start in range(0, len(task_ids), RECHECK_BATCH):
                batch = task_ids[start : start + RECHECK_BATCH]
                rows = await session.execute(
                    select(Task.id).where(Task.id.in_(batch), Task.status != "in_progress")
                )
                ended.extend(rows.scalars())
        return ended
