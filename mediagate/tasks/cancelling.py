"""POST /api/v1/tasks/{task_id}/cancel: end a task `cancelled`, nothing charged, when that
can still be done honestly.

Where the task is decides what a cancel can do:
- not yet handed to a provider (prepare, submit): cancelled at once. One guarded UPDATE
  ends it and bumps its fencing `attempt`, so a worker running its prepare or submit
  right now fails its next fenced write, the `submitting` checkpoint written before any
  provider is paid, and gives up;
- accepted by a provider (poll): cancelled only if the provider's API can stop it and
  confirms it did (fal while queued, Replicate, the sandbox before it is done); else 409,
  and the task runs on and is charged as usual if it succeeds;
- being handed to a provider (submitting) or finished there (store, finalize): 409;
- already ended: cancelled again answers the same; completed or failed is a 409.
Whatever happens, the user pays only for a task that completed: a cancel we could not
perform charges nothing extra, and a cancel never refunds work that completed.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from fastapi import Request
from sqlalchemy import Update, update

from mediagate.catalog.loader import Catalog
from mediagate.core.clock import utcnow
from mediagate.core.db import Database
from mediagate.core.errors import MediagateError, NotFound, ProviderUnavailable
from mediagate.core.http import files_base
from mediagate.core.redis import RedisLink
from mediagate.media.expiry import Retention
from mediagate.observability.metrics import Metrics
from mediagate.providers.base import ProviderRequest
from mediagate.providers.errors import ProviderError
from mediagate.providers.registry import ProviderRegistry
from mediagate.tasks.models import Task
from mediagate.tasks.settling import announce, settle

log = logging.getLogger("mediagate.tasks")

CANCELLED_MESSAGE = "Cancelled at the client's request; nothing was charged"
UNSENT_STEPS = ("prepare", "submit")
"""Steps before any provider has (or may have) the task."""


class CannotCancel(MediagateError):
    """This task can no longer be cancelled"""

    status: ClassVar[int] = 409
    type: ClassVar[str] = "conflict"


@dataclass(frozen=True)
class Canceller:
    """What a cancel needs: the database, the providers' clients, where callbacks and
    waiters learn of the end."""

    db: Database
    catalog: Catalog
    providers: ProviderRegistry
    files_base: str
    retention: Retention
    redis: RedisLink | None
    on_finished: Callable[[str], None] | None = None
    metrics: Metrics | None = None

    async def cancel(self, account_id: str, task_id: str) -> Task:
        """The task once cancelled (or as it already was, if cancelled before); raises
        CannotCancel (409) with the reason, or ProviderUnavailable (503)."""
        task = await self._load(account_id, task_id)
        if task.status == "in_progress" and task.step in UNSENT_STEPS:
            if await self._end(task, steps=UNSENT_STEPS):
                return await self._load(account_id, task_id)
            task = await self._load(account_id, task_id)  # it moved on meanwhile
        if task.status == "cancelled":
            return task
        if task.status != "in_progress":
            raise CannotCancel(f"Task {task_id} has already {task.status}; nothing to cancel")
        if task.step == "poll":
            return await self._cancel_upstream(task)
        if task.step == "submitting":
            raise CannotCancel(
                f"Task {task_id} is being handed to {task.provider} at this moment; "
                "try the cancel again in a few seconds"
            )
        raise CannotCancel(
            f"{task.provider} has already finished task {task_id}: its results are being "
            "stored, and it will be charged as usual"
        )

    async def _cancel_upstream(self, task: Task) -> Task:
        assert task.provider is not None and task.upstream_id is not None
        try:
            provider = self.providers.get(task.provider)
        except KeyError:
            raise ProviderUnavailable(
                f"{task.provider} is not configured on this server, so it cannot be asked "
                "to cancel the task; try again later"
            ) from None
        cancel = getattr(provider, "cancel", None)
        if cancel is None:
            raise CannotCancel(
                f"{task.provider} has accepted task {task.id} and its API cannot cancel it; "
                "it will finish, and be charged only if it succeeds"
            )
        model = self.catalog.get(task.model)
        request = ProviderRequest(
            reference=task.id,
            model=task.model,
            type=task.type,
            params=task.params,
            prepared=task.prepared or {},
            route=model.route(task.provider, task.type),
            output=model.output,
        )
        try:
            stopped = await cancel(task.upstream_id, request, force=False)
        except ProviderError as exc:
            raise ProviderUnavailable(
                f"{task.provider} could not be asked to cancel the task ({exc.message}); "
                "try again later"
            ) from exc
        if not stopped:
            raise CannotCancel(
                f"{task.provider} has already started generating task {task.id} and cannot "
                "stop it; it will finish, and be charged only if it succeeds"
            )
        if not await self._end(task, steps=("poll",), upstream_id=task.upstream_id):
            log.warning("task %s: cancelled at %s but it ended meanwhile", task.id, task.provider)
        return await self._load(task.account_id, task.id)

    async def _end(
        self, task: Task, *, steps: tuple[str, ...], upstream_id: str | None = None
    ) -> bool:
        """End the task cancelled if it is still in one of `steps` (and, once accepted,
        still at the same upstream task), settling in the same transaction. False:
        something else moved it first, and nothing changed."""
        async with self.db.write() as session:
            ended = await session.execute(_end_statement(task.id, steps, upstream_id))
            if ended.rowcount != 1:  # type: ignore[attr-defined]
                return False
            await settle(
                session,
                task,
                "cancelled",
                files_base=self.files_base,
                retention=self.retention,
                reason="task cancelled by the client",
            )
        await announce(task.id, on_finished=self.on_finished, redis=self.redis)
        if self.metrics is not None:
            self.metrics.tasks_finished.labels("cancelled").inc()
        log.info("task %s cancelled", task.id)
        return True

    async def _load(self, account_id: str, task_id: str) -> Task:
        async with self.db.read() as session:
            task = await session.get(Task, task_id, populate_existing=True)
            if task is None or task.account_id != account_id:
                raise NotFound(f"No task {task_id!r}", param="task_id")
            session.expunge(task)
            return task


def canceller(request: Request) -> Canceller:
    """The app's canceller, for one request (the API route and the dashboard's button)."""
    state = request.app.state
    return Canceller(
        db=state.core.db,
        catalog=state.core.catalog,
        providers=state.providers,
        files_base=files_base(request),
        retention=Retention.from_settings(state.core.settings),
        redis=state.components.redis,
        on_finished=state.waiters.finished,
        metrics=state.metrics,
    )


def _end_statement(task_id: str, steps: tuple[str, ...], upstream_id: str | None) -> Update:
    """The guarded UPDATE that ends a task cancelled. Bumping `attempt` (and dropping the
    lease) fences off a worker that holds the task right now."""
    now = utcnow()
    same_upstream = (
        Task.upstream_id.is_(None) if upstream_id is None else Task.upstream_id == upstream_id
    )
    return (
        update(Task)
        .where(
            Task.id == task_id,
            Task.status == "in_progress",
            Task.step.in_(steps),
            same_upstream,
        )
        .values(
            status="cancelled",
            step="done",
            error_type="cancelled",
            error_message=CANCELLED_MESSAGE,
            lease_owner=None,
            lease_expires_at=None,
            attempt=Task.attempt + 1,
            completed_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
