"""Create and read tasks. A task is accepted in ONE transaction: a slot under the
account's in-flight limit, the credit hold, the task row (step=prepare) and the
idempotency row. It is the hottest write there is, so on SQLite it runs as four prebuilt
Core statements, without the ORM's unit of work, and on PostgreSQL as one statement
(tasks/accept_pg.py: one round trip, the account row locked only until the COMMIT that
follows it)."""

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import bindparam, delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from mediagate.accounts.models import Account
from mediagate.catalog.validation import GenerationRequest
from mediagate.core.clock import isoformat, utcnow
from mediagate.core.db import Database, table_of
from mediagate.core.errors import IdempotencyMismatch, NotFound, RateLimited
from mediagate.core.ids import new_id
from mediagate.core.prepared import Prepared
from mediagate.keys import spending
from mediagate.keys.service import AuthedKey
from mediagate.ledger import service as ledger
from mediagate.media.expiry import Retention
from mediagate.tasks import accept_pg
from mediagate.tasks.models import IdempotencyKey, Task
from mediagate.tasks.output import task_output

IDEMPOTENCY_TTL = timedelta(hours=24)
API_STATUS = {
    "in_progress": "IN_PROGRESS",
    "completed": "completed",
    "failed": "failed",
    "cancelled": "cancelled",
}

UNCHARGED = ("failed", "cancelled")
"""Final statuses whose hold was given back."""

_accounts = table_of(Account)
_tasks = table_of(Task)
_TAKE_SLOT = Prepared(
    update(_accounts)
    .where(
        _accounts.c.id == bindparam("account"), _accounts.c.tasks_in_progress < bindparam("limit")
    )
    .values(tasks_in_progress=_accounts.c.tasks_in_progress + 1)
)
_FREE_SLOT = Prepared(
    update(_accounts)
    .where(_accounts.c.id == bindparam("account"))
    .values(tasks_in_progress=_accounts.c.tasks_in_progress - 1)
)
_NEW_TASK_COLUMNS = (
    *("id", "account_id", "key_id", "mode", "model", "type", "params", "price", "hold_id"),
    *("callback_url", "status", "step", "next_run_at", "deadline_at", "attempt"),
    *("step_errors", "polls", "created_at", "updated_at"),
)
_INSERT_TASK = Prepared(insert(_tasks), columns=_NEW_TASK_COLUMNS)
_keys = table_of(IdempotencyKey)
_INSERT_KEY = Prepared(insert(_keys), columns=[c.name for c in _keys.c])
_STATUS = select(_tasks.c.status).where(_tasks.c.id == bindparam("id"))


class TaskView(NamedTuple):
    """What the API shows of a task (GET /api/v1/tasks/{id}), read in one statement."""

    id: str
    account_id: str
    mode: str
    model: str
    type: str
    status: str
    price: int
    images: list[dict[str, Any]] | None
    videos: list[dict[str, Any]] | None
    error_type: str | None
    error_message: str | None
    created_at: datetime
    completed_at: datetime | None
    files_expired_at: datetime | None


_TASK_VIEW = Prepared(
    select(*(_tasks.c[name] for name in TaskView._fields)).where(_tasks.c.id == bindparam("id"))
)


@dataclass(frozen=True)
class Submission:
    task_id: str
    status: str
    replayed: bool


def request_fingerprint(body: dict[str, Any]) -> str:
    """Stable hash of a request body (key order and whitespace do not matter)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def submit_generation(
    session: AsyncSession,
    *,
    caller: AuthedKey,
    request: GenerationRequest,
    max_in_flight: int,
    idempotency_key: str | None = None,
    fingerprint: str | None = None,
) -> Submission:
    now = utcnow()
    if caller.limits is not None:
        caller.limits.check_model(request.model.id)
    if idempotency_key is not None:
        existing = await _replay(session, caller.account_id, idempotency_key, fingerprint, now)
        if existing is not None:
            return existing
    task_id = new_id("task", 24)
    params = dict(request.params)
    callback_url = params.pop("callback_url", None)
    task = {
        "id": task_id,
        "account_id": caller.account_id,
        "key_id": caller.id,
        "mode": caller.mode,
        "model": request.model.id,
        "type": request.type,
        "params": params,
        "price": request.price,
        "callback_url": callback_url,
        "status": "in_progress",
        "step": "prepare",
        "next_run_at": now,
        "deadline_at": now + timedelta(seconds=request.model.deadline_s),
        "attempt": 0,
        "step_errors": 0,
        "polls": 0,
        "created_at": now,
        "updated_at": now,
    }
    keyed = idempotency_key is not None and fingerprint is not None
    if session.get_bind().dialect.name == "postgresql":
        ledger.check_amount(request.price)
        capped = caller.limits is not None and bool(caller.limits.caps)
        caps = (
            await spending.ensure_periods(session, caller.id, caller.limits, now)
            if capped and caller.limits is not None
            else None
        )
        wallet = ledger.wallet_id(caller.account_id, caller.mode)
        accepted = await accept_pg.accept(
            session,
            account_id=caller.account_id,
            limit=max_in_flight,
            wallet=wallet,
            revenue=ledger.revenue_id(caller.mode),
            task=task,
            idempotency=(idempotency_key, fingerprint, now + IDEMPOTENCY_TTL)  # type: ignore[arg-type]
            if keyed
            else None,
            spend=(caller.id, caps) if caps is not None else None,
        )
        if not accepted.slot:
            _refuse_slot(max_in_flight)
        if not accepted.wallet:
            await ledger.refuse_hold(session, wallet, request.price)
        if accepted.hold_id is None and caller.limits is not None:
            spending.refuse_first(caller.limits, accepted.spent, request.price, now)
        assert accepted.hold_id is not None
        return Submission(task_id, "in_progress", replayed=False)
    await _take_slot(session, caller.account_id, max_in_flight)
    hold_id = await ledger.hold(
        session, caller.account_id, caller.mode, request.price, task_id=task_id
    )
    await spending.commit_spend(session, caller.id, caller.limits, request.price, now)
    await _INSERT_TASK.run(session, {**task, "hold_id": hold_id})
    if keyed:
        await _INSERT_KEY.run(
            session,
            {
                "account_id": caller.account_id,
                "key": idempotency_key,
                "request_hash": fingerprint,
                "task_id": task_id,
                "created_at": now,
                "expires_at": now + IDEMPOTENCY_TTL,
            },
        )
    return Submission(task_id, "in_progress", replayed=False)


async def _take_slot(session: AsyncSession, account_id: str, max_in_flight: int) -> None:
    """One more task in progress for the account, or 429 at the limit (one conditional
    UPDATE of the account's counter: the cost does not grow with the tasks queued)."""
    taken = await _TAKE_SLOT.run(session, {"account": account_id, "limit": max_in_flight})
    if taken.rowcount != 1:
        _refuse_slot(max_in_flight)


def _refuse_slot(max_in_flight: int) -> None:
    raise RateLimited(
        f"Too many tasks in progress ({max_in_flight} at most); wait for some to finish",
        retry_after_s=5,
    )


async def free_slot(session: AsyncSession, account_id: str) -> None:
    """A task of the account finished (in the transaction that finishes it)."""
    await _FREE_SLOT.run(session, {"account": account_id})


NEW_TASK_CHANNEL = "mediagate_tasks"
FINISHED_CHANNEL = "mediagate_task_finished"
"""NOTIFY'd with the task id when a task ends (tasks/waiters.py listens)."""
REDIS_FINISHED_CHANNEL = "mediagate:task-finished"


async def announce_finished(session: AsyncSession, task_id: str) -> None:
    """Tell waiting requests in every process that the task ended (PostgreSQL delivers it
    when the finishing unit commits, never before the row says so)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_notify(:channel, :task)"),
            {"channel": FINISHED_CHANNEL, "task": task_id},
        )


async def _replay(
    session: AsyncSession, account_id: str, key: str, fingerprint: str | None, now: datetime
) -> Submission | None:
    row = await session.get(IdempotencyKey, (account_id, key))
    if row is None:
        return None
    if row.expires_at <= now:
        await session.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.account_id == account_id, IdempotencyKey.key == key
            )
        )
        return None
    if row.request_hash != fingerprint:
        raise IdempotencyMismatch()
    status = (await session.execute(_STATUS, {"id": row.task_id})).scalar_one()
    return Submission(row.task_id, status, replayed=True)


async def get_task(db: Database, account_id: str, task_id: str) -> TaskView:
    """The account's task; another account's task is as unknown as a missing one."""
    row = await _TASK_VIEW.one(db, {"id": task_id})
    task = TaskView(*row) if row is not None else None
    if task is None or task.account_id != account_id:
        raise NotFound(f"No task {task_id!r}", param="task_id")
    return task


def task_as_data(task: Task | TaskView, files_base: str, retention: Retention) -> dict[str, Any]:
    """The public task object (GET /api/v1/tasks/{id}, callbacks)."""
    completed = task.status == "completed"
    output = task_output(
        task.images if completed else None,
        task.videos if completed else None,
        files_base=files_base,
        expires_at=retention.task_expiry(task.mode, task.completed_at),
        files_expired_at=task.files_expired_at,
    )
    error = (
        {"type": task.error_type, "message": task.error_message}
        if task.status in UNCHARGED
        else None
    )
    return {
        "task_id": task.id,
        "model": task.model,
        "type": task.type,
        "status": API_STATUS[task.status],
        "created_at": isoformat(task.created_at),
        "completed_at": isoformat(task.completed_at),
        "credits": 0 if task.status in UNCHARGED else task.price,
        "output": output,
        "error": error,
    }


async def poll_now(session: AsyncSession, task_id: str) -> bool:
    """Make a task waiting on its provider due now (an upstream callback arrived)."""
    return (await _POLL_NOW.run(session, {"task": task_id, "now": utcnow()})).rowcount == 1


_POLL_NOW = Prepared(
    update(_tasks)
    .where(
        _tasks.c.id == bindparam("task"), _tasks.c.status == "in_progress", _tasks.c.step == "poll"
    )
    .values(next_run_at=bindparam("now", type_=_tasks.c.next_run_at.type))
)
