"""What ending a task does besides writing its final status: the account's slot, the
credits, the client's callback and the "task finished" hints. Shared by the runner (a task
completed or failed) and by a client's cancel, so every end settles the same way.

`settle` runs inside the transaction that writes the final status; `announce` after it
commits, so a woken request reads the finished row, never the old one.
"""

from collections.abc import Callable
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from mediagate.core.redis import RedisLink
from mediagate.keys import spending
from mediagate.ledger import service as ledger
from mediagate.media.expiry import Retention
from mediagate.tasks.models import Task
from mediagate.tasks.service import (
    REDIS_FINISHED_CHANNEL,
    announce_finished,
    free_slot,
    task_as_data,
)
from mediagate.webhooks import service as webhooks

FinalStatus = Literal["completed", "failed", "cancelled"]


async def settle(
    session: AsyncSession,
    task: Task,
    status: FinalStatus,
    *,
    files_base: str,
    retention: Retention,
    reason: str | None = None,
) -> None:
    """Free the slot; charge the hold if the task completed, else give it back (with
    `reason` on the ledger entry); queue the callback; hint every process."""
    await free_slot(session, task.account_id)
    if task.hold_id is not None:
        if status == "completed":
            await ledger.capture(session, task.hold_id)
        else:
            await ledger.release(session, task.hold_id, reason=reason)
            await spending.give_back(session, task.key_id, task.created_at, task.price)
    if task.callback_url:
        finished = await session.get_one(Task, task.id, populate_existing=True)
        await webhooks.enqueue(
            session,
            task_id=task.id,
            account_id=task.account_id,
            mode=task.mode,
            url=task.callback_url,
            payload=task_as_data(finished, files_base, retention),
        )
    await announce_finished(session, task.id)


async def announce(
    task_id: str,
    *,
    on_finished: Callable[[str], None] | None,
    redis: RedisLink | None,
) -> None:
    """After the commit: wake this process's waiters, and other processes' through Redis
    (PostgreSQL's NOTIFY went with the commit itself)."""
    if on_finished is not None:
        on_finished(task_id)
    if redis is not None:
        await redis.publish(REDIS_FINISHED_CHANNEL, task_id)
