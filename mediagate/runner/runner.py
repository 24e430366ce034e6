"""The lease-based step runner: claim due tasks, run one short step each, write back.

Runs inside `mediagate serve` (embedded) or alone as `mediagate worker`. Any number of
runners can share one database: a claim leases a row and bumps its `attempt`, every
write-back is fenced on (lease_owner, attempt), so a runner that lost its lease changes
nothing. Killing a runner at any point loses no task: its leases expire and the
reconciler puts the tasks back in the queue.
"""

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from mediagate.accounts.deletion import PurgeReport, purge_pass
from mediagate.catalog.loader import Catalog
from mediagate.core.clock import utcnow
from mediagate.core.db import Database
from mediagate.core.errors import ProviderUnavailable
from mediagate.core.ids import random_base62
from mediagate.core.redis import RedisLink
from mediagate.core.settings import Settings
from mediagate.media.expiry import Retention
from mediagate.media.references import ReferenceLoader
from mediagate.media.retention import RetentionSweeper
from mediagate.media.storage import Storage
from mediagate.observability.metrics import Metrics
from mediagate.providers.errors import (
    ProviderAuthError,
    ProviderDeclined,
    ProviderRejected,
    ProviderRetryable,
    SubmitOutcomeUnknown,
)
from mediagate.providers.health import record_breakers
from mediagate.providers.registry import ProviderRegistry
from mediagate.runner import repository
from mediagate.runner.heartbeat import LeaseKeeper
from mediagate.runner.scratch import sweep_scratch
from mediagate.runner.steps import (
    STEPS,
    Advance,
    Finish,
    Outcome,
    RetryLater,
    Step,
    StepContext,
    TaskFailed,
    cancel_upstream,
    poll_delay,
)
from mediagate.runner.wakeups import RedisListener, TaskListener
from mediagate.tasks.models import Task
from mediagate.tasks.settling import announce, settle
from mediagate.webhooks.service import CallbackSender

log = logging.getLogger("mediagate.runner")
STEP_SHARE_OF_LEASE = 0.75
CHAIN_MAX_STEPS = 6
"""A step whose successor is due at once runs it under the same lease, while less than a
quarter of the lease has passed; so a task does not wait for a claim between prepare and
submit, or between poll, store and finalize. The chained step's result is not written on
its own: it goes with the next write, which always comes before anything that costs money
(the `submitting` checkpoint before a provider is paid, the finish before credits are
captured). A runner that dies in between loses only work that is redone safely: reading
references again, polling again, downloading the same results to the same keys."""


CLAIM_BATCH = 8
"""Tasks claimed at once. A claim and the first part of each step it starts run without
yielding to the event loop: 64 at once held it for about 40 ms. Claiming 8 and coming
back spreads them over several turns of the loop, between the answers of steps already
running: holding 5,000 tasks at 64 steps at once, the worker's loop lag p99 went from
<= 100 ms to 30-40 ms, at the same throughput (bench/inflight.py)."""


class LeaseLost(Exception):
    """Another worker owns this task now; stop without writing."""


class Runner:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        catalog: Catalog,
        providers: ProviderRegistry,
        storage: Storage,
        references: ReferenceLoader,
        callbacks: CallbackSender | None = None,
        metrics: Metrics | None = None,
        redis: RedisLink | None = None,
        name: str | None = None,
        on_finished: Callable[[str], None] | None = None,
    ) -> None:
        self.db = db
        self.on_finished = on_finished
        """Told each task id this runner finishes (the requests waiting in this process)."""
        self.settings = settings
        self.callbacks = callbacks
        self.metrics = metrics or Metrics()
        self.redis = redis
        self.listener: TaskListener | None = None
        self.redis_listener: RedisListener | None = None
        self.ctx = StepContext(
            settings,
            catalog,
            providers,
            storage,
            references,
            checkpoint=self._checkpoint,
            active_on=self._active_on,
        )
        self.retention = Retention.from_settings(settings)
        self.sweeper = RetentionSweeper(db, storage, settings)
        self._sweeping: asyncio.Task[None] | None = None
        self.worker = name or f"{socket.gethostname()}:{os.getpid()}:{random_base62(6)}"
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._unwritten: dict[str, dict[str, Any]] = {}
        """Results of chained steps not written yet, by task id."""

    def wake(self) -> None:
        """A hint that a task may be due now (a new submit, a step that finished)."""
        self._wake.set()

    async def run(self) -> None:
        log.info("runner %s started", self.worker)
        await asyncio.to_thread(sweep_scratch, self.settings)
        if self.db.engine.dialect.name == "postgresql":
            self.listener = TaskListener(self.db.url, self.wake)
            await self.listener.start()
        if self.redis is not None:
            self.redis_listener = RedisListener(self.redis, self.wake)
            await self.redis_listener.start()
        watch = asyncio.create_task(self._watch_loop_lag(), name="loop lag")
        try:
            await self._loop()
        finally:
            watch.cancel()
            if self.listener is not None:
                await self.listener.stop()
            if self.redis_listener is not None:
                await self.redis_listener.stop()

    async def _loop(self) -> None:
        next_reconcile = next_purge = 0.0
        loop = asyncio.get_running_loop()
        next_sweep = loop.time() + self.settings.reconcile_interval_s  # after the first claims
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                if loop.time() >= next_reconcile:
                    await self.reconcile()
                    next_reconcile = loop.time() + self.settings.reconcile_interval_s
                if self.settings.account_purge_interval_s > 0 and loop.time() >= next_purge:
                    next_purge = loop.time() + self.settings.account_purge_interval_s
                    await self.purge_deleted_accounts()
                if loop.time() >= next_sweep:
                    self._start_sweep()
                    next_sweep = loop.time() + self.settings.retention_interval_s
                claimed = await self._claim_and_start()
                if self.callbacks is not None:
                    await self.callbacks.deliver_due()
            except Exception:
                log.exception("runner loop error; retrying")
                claimed = 0
            if claimed == CLAIM_BATCH:  # probably more due: claim again once the loop has
                await asyncio.sleep(0)  # run what is ready (the steps just started)
                continue
            await self._idle()
        log.info("runner %s stopped claiming", self.worker)

    async def _watch_loop_lag(self, interval_s: float = 0.05) -> None:
        """How late a timer fires: the time a step waits for the loop when it is busy."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(interval_s)
            self.metrics.loop_lag.observe(max(0.0, loop.time() - started - interval_s))

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop claiming, let running steps finish within `grace_s`, then cancel the rest
        (their leases expire and another runner takes over)."""
        self._stopping.set()
        self._wake.set()
        if self._sweeping is not None:
            self._sweeping.cancel()
            await asyncio.gather(self._sweeping, return_exceptions=True)
        if not self._running:
            return
        _, pending = await asyncio.wait(self._running, timeout=grace_s)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if pending:
            # Hand back what we could not finish now, rather than when the lease runs out.
            # An interrupted submit stays `submitting`: whoever takes it looks it up first.
            async with self.db.write() as session:
                released = await repository.release_leases(session, self.worker, utcnow())
            log.warning("stopped with %d steps unfinished; released their leases", released)

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Run until no task is in progress (tests and tools that need a quiet queue)."""
        async with asyncio.timeout(timeout_s):
            while True:
                started = await self._claim_and_start()
                if self._running:
                    await asyncio.wait(self._running)
                    continue
                if started:
                    continue
                async with self.db.read() as session:
                    if not await repository.count_in_progress(session):
                        return
                await self._idle()

    async def reconcile(self) -> None:
        now = utcnow()
        async with self.db.write() as session:
            await record_breakers(session, self.ctx.providers, self.worker)
            if not await repository.reconciler_lock(session):
                return  # another worker is reconciling right now
            requeued = await repository.requeue_expired_leases(session, now)
            overdue = await repository.hasten_overdue(session, now)
        if requeued or overdue:
            log.warning(
                "reconciler: %d expired leases requeued, %d overdue tasks", requeued, overdue
            )
            self.wake()

    async def purge_deleted_accounts(self) -> PurgeReport:
        """One bounded pass removing what deleted accounts left after their grace period
        (accounts/deletion.py); safe to run on every worker at once."""
        return await purge_pass(
            self.db,
            self.ctx.storage,
            grace=timedelta(days=self.settings.account_delete_grace_days),
            batch=self.settings.account_purge_batch,
            now=utcnow(),
        )

    def _start_sweep(self) -> None:
        """Run the retention sweeper beside the claims (it waits on storage), one run at
        a time; stopping cancels it, which its claims make safe (media/retention.py)."""
        if self._sweeping is not None and not self._sweeping.done():
            return
        self._sweeping = asyncio.create_task(self._sweep(), name="retention sweep")

    async def _sweep(self) -> None:
        try:
            report = await self.sweeper.run_once()
        except Exception:
            log.exception("retention sweep failed; trying again at the next interval")
            return
        swept = self.metrics.retention_swept
        for kind in ("tasks", "uploads", "orphans", "files"):
            swept.labels(kind).inc(getattr(report, kind))

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.settings.runner_poll_interval_s)

    async def _claim_and_start(self) -> int:
        room = self.settings.runner_concurrency - len(self._running)
        if room <= 0 or self._stopping.is_set():
            return 0
        if not await repository.any_due(self.db, utcnow()):
            return 0
        with self.metrics.claim_seconds.time():
            async with self.db.write() as session:
                tasks = await repository.claim_due(
                    session,
                    worker=self.worker,
                    limit=min(room, CLAIM_BATCH),
                    lease_s=self.settings.lease_s,
                    now=utcnow(),
                )
        self.metrics.claims.inc(len(tasks))
        for task in tasks:
            job = asyncio.create_task(self._run_one(task), name=f"step {task.id} {task.step}")
            self._running.add(job)
            job.add_done_callback(self._running.discard)
        return len(tasks)

    async def _run_one(self, task: Task) -> None:
        loop = asyncio.get_running_loop()
        claimed_at = loop.time()
        try:
            for _ in range(CHAIN_MAX_STEPS):
                outcome = await self._run_step(task)
                chain = (
                    isinstance(outcome, Advance)
                    and outcome.delay_s <= 0
                    and not self._stopping.is_set()
                    and loop.time() - claimed_at < self.settings.lease_s * (1 - STEP_SHARE_OF_LEASE)
                )
                if not chain:
                    await self._apply(task, outcome)
                    break
                assert isinstance(outcome, Advance)
                await self._keep_going(task, outcome)
        except LeaseLost:
            self.metrics.lease_lost.inc()
            log.warning(
                "task %s: lease lost during %s; leaving it to its new owner", task.id, task.step
            )
        except Exception:
            log.exception("task %s: could not write back step %s", task.id, task.step)
        self._unwritten.pop(task.id, None)  # written by now, or the lease is someone else's
        self.wake()

    async def _run_step(self, task: Task) -> Outcome:
        if task.deadline_at <= utcnow():
            await cancel_upstream(self.ctx, task)
            return Finish("failed", "timeout", _timeout_message(task))
        step = STEPS[task.step]
        try:
            # A long step keeps its lease by a heartbeat, and is cancelled if it loses it.
            with self.metrics.step_seconds.labels(task.step).time():
                async with asyncio.timeout(self.settings.step_timeout_s):
                    return await self._kept_alive(task, step)
        except TaskFailed as failed:
            return Finish("failed", failed.error_type, failed.message)
        except ProviderUnavailable as exc:
            return Finish("failed", "provider_unavailable", exc.message)
        except RetryLater as later:
            log.info("task %s: %s; retrying in %.0f s", task.id, later, later.delay_s)
            return Advance(task.step, later.delay_s, {"step_errors": task.step_errors})
        except (ProviderRejected, ProviderDeclined) as exc:  # after acceptance: polling, results
            self.metrics.provider_errors.labels(exc.provider, "rejected").inc()
            return Finish("failed", exc.error_type, exc.message)
        except ProviderAuthError as exc:
            self.metrics.provider_errors.labels(exc.provider, "auth").inc()
            log.error("PROVIDER %s: %s", exc.concern, exc)
            return Finish("failed", "provider_unavailable", f"{exc.provider} is unavailable")
        except ProviderRetryable as exc:
            self.metrics.provider_errors.labels(exc.provider, "retryable").inc()
            log.warning("task %s: %s; retrying", task.id, exc)
            delay = max(exc.retry_after_s, poll_delay(task.polls))
            return Advance(task.step, delay, {"step_errors": task.step_errors})
        except SubmitOutcomeUnknown as exc:
            log.warning("task %s: %s; will look it up", task.id, exc)
            return Advance("submitting", 1.0, {"step_errors": task.step_errors})
        except LeaseLost:
            raise
        except Exception as exc:
            errors = task.step_errors + 1
            log.exception(
                "task %s: step %s failed (%d/%d)",
                task.id,
                task.step,
                errors,
                self.settings.step_max_errors,
            )
            if errors >= self.settings.step_max_errors:
                return Finish(
                    "failed",
                    "api_error",
                    f"Internal error while processing the task ({type(exc).__name__})",
                )
            return Advance(task.step, min(2.0**errors, 60.0), {"step_errors": errors})

    async def _kept_alive(self, task: Task, step: Step) -> Outcome:
        """Run `step` with a heartbeat on the lease (runner/heartbeat.py): LeaseLost if
        another worker took the task meanwhile (the step was cancelled)."""
        keeper = LeaseKeeper(self.db, task, worker=self.worker, lease_s=self.settings.lease_s)
        try:
            return await step(self.ctx, task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not keeper.lost or current is None:
                raise
            current.uncancel()  # our own cancel, not the runner's: end as a lost lease
            raise LeaseLost() from None
        finally:
            keeper.stop()
            if keeper.beats:
                self.metrics.lease_heartbeats.inc(keeper.beats)

    async def _apply(self, task: Task, outcome: Outcome) -> None:
        now = utcnow()
        if isinstance(outcome, Advance):
            values: dict[str, Any] = {
                "step": outcome.step,
                "next_run_at": now + timedelta(seconds=outcome.delay_s),
                "updated_at": now,
                **outcome.values,
            }
            if "step_errors" not in outcome.values:
                values["step_errors"] = 0
            async with self.db.write() as session:
                await self._write_back(session, task, values, release=True)
            return
        await self._finish(task, outcome, now)

    async def _keep_going(self, task: Task, outcome: Advance) -> None:
        """Go straight on to the next step, lease kept; the step's result is written with
        the next write (see CHAIN_MAX_STEPS)."""
        now = utcnow()
        values: dict[str, Any] = {
            "step": outcome.step,
            "next_run_at": now,
            "updated_at": now,
            "step_errors": 0,
            **outcome.values,
        }
        self._unwritten.setdefault(task.id, {}).update(values)
        for name, value in values.items():
            setattr(task, name, value)

    async def _write_back(
        self, session: Any, task: Task, values: dict[str, Any], *, release: bool
    ) -> None:
        """Fenced write of `values` and of what chained steps left unwritten."""
        values = {**self._unwritten.pop(task.id, {}), **values}
        if not await repository.write_back(
            session, task, worker=self.worker, values=values, release=release
        ):
            raise LeaseLost()

    async def _finish(self, task: Task, outcome: Finish, now: Any) -> None:
        """Terminal state and the credit outcome in ONE transaction: capture on success,
        release otherwise. Fenced, so a task is finished (and charged) at most once."""
        values = {
            "status": outcome.status,
            "step": "done",
            "error_type": outcome.error_type,
            "error_message": outcome.error_message,
            "completed_at": now,
            "updated_at": now,
        }
        async with self.db.write() as session:
            await self._write_back(session, task, values, release=True)
            await settle(
                session,
                task,
                outcome.status,
                files_base=self._files_base(),
                retention=self.retention,
                reason=f"task {outcome.status} ({outcome.error_type})",
            )
        await announce(task.id, on_finished=self.on_finished, redis=self.redis)
        self.metrics.tasks_finished.labels(outcome.status).inc()
        log.info(
            "task %s %s%s",
            task.id,
            outcome.status,
            f" ({outcome.error_type})" if outcome.error_type else "",
        )

    def _files_base(self) -> str:
        s = self.settings
        return (s.files_base_url or s.public_base_url or f"http://{s.host}:{s.port}").rstrip("/")

    async def _active_on(self, provider: str, *, besides: str) -> int:
        async with self.db.read() as session:
            return await repository.count_active_on(session, provider, besides=besides)

    async def _checkpoint(self, task: Task, values: dict[str, Any]) -> None:
        values = {**values, "updated_at": utcnow()}
        async with self.db.write() as session:
            await self._write_back(session, task, values, release=False)


def _timeout_message(task: Task) -> str:
    seconds = int((task.deadline_at - task.created_at).total_seconds())
    return f"The task did not finish within {seconds} s and was stopped; nothing was charged"
