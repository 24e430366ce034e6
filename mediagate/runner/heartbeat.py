"""Keeping a lease while one step runs long (a synchronous provider's minutes-long call).

A step that is still running a third of a lease after it started begins a heartbeat:
every third of the lease, one fenced UPDATE (task id, attempt, lease owner) moves the
lease's end a full lease ahead, so the reconciler never hands the task to another worker
meanwhile. If the fence fails, another worker holds the task now: the heartbeat stops and
the step is cancelled (its result would not be written anyway: every write is fenced). If
the database cannot be reached, the step is cancelled before the lease it holds runs out.
A step never outlives its lease. Steps that end quickly cost one timer, nothing more.
"""

import asyncio
import logging
from datetime import timedelta

from mediagate.core.clock import utcnow
from mediagate.core.db import Database
from mediagate.runner import repository
from mediagate.tasks.models import Task

log = logging.getLogger("mediagate.runner")


class LeaseKeeper:
    """The heartbeat of one running step. Make it inside the step's asyncio task."""

    def __init__(self, db: Database, task: Task, *, worker: str, lease_s: float) -> None:
        self.db = db
        self.task = task
        self.worker = worker
        self.lease_s = lease_s
        self.every = lease_s / 3
        self.lost = False
        """The lease was lost (or about to run out unrenewed) and the step cancelled."""
        self.beats = 0
        self._step = asyncio.current_task()
        self._beat: asyncio.Task[None] | None = None
        self._stopped = False
        self._timer = asyncio.get_running_loop().call_later(self.every, self._start)

    def _start(self) -> None:
        if not self._stopped:
            self._beat = asyncio.create_task(self._run(), name=f"lease {self.task.id}")

    async def _run(self) -> None:
        while not self._stopped:
            until = utcnow() + timedelta(seconds=self.lease_s)
            try:
                async with self.db.write() as session:
                    kept: bool | None = await repository.extend_lease(
                        session, self.task, worker=self.worker, until=until
                    )
            except Exception:
                log.exception("task %s: could not extend its lease", self.task.id)
                kept = None
            if kept:
                self.task.lease_expires_at = until
                self.beats += 1
            elif kept is False or self._runs_out_before_next_beat():
                self._lose("another worker holds it" if kept is False else "cannot renew it")
                return
            await asyncio.sleep(self.every)

    def _runs_out_before_next_beat(self) -> bool:
        expires = self.task.lease_expires_at
        return expires is None or utcnow() + timedelta(seconds=self.every) >= expires

    def _lose(self, why: str) -> None:
        if self._stopped or self._step is None:
            return
        log.warning("task %s: lease lost while running %s (%s)", self.task.id, self.task.step, why)
        self.lost = True
        self._step.cancel()

    def stop(self) -> None:
        self._stopped = True
        self._timer.cancel()
        if self._beat is not None:
            self._beat.cancel()
