"""`Prefer: wait=N` (RFC 7240): hold the answer until the task ends or N seconds pass."""

import asyncio
import contextlib

from mediagate.core.db import Database
from mediagate.core.errors import InvalidRequest
from mediagate.tasks import service
from mediagate.tasks.waiters import TaskWaiters

MAX_WAIT_S = 60
"""A longer wait is clamped to this (a preference is a hint, RFC 7240 section 2); the
Preference-Applied header says what was applied."""


def wait_preference(header: str | None) -> int | None:
    """Seconds to wait from a Prefer header (None: no wait asked for). Other preferences
    are ignored, as RFC 7240 says; a wait that is not a whole number of seconds is a 400,
    since silently not waiting would surprise the client."""
    if not header:
        return None
    for preference in header.split(","):
        token, _, value = preference.split(";", 1)[0].partition("=")
        if token.strip().lower() != "wait":
            continue
        value = value.strip().strip('"')
        if not value.isdigit():
            raise InvalidRequest(
                f"Prefer: wait must be a whole number of seconds (0-{MAX_WAIT_S}), not {value!r}",
                param="Prefer",
            )
        return min(int(value), MAX_WAIT_S)
    return None


def applied(wait_s: int | None) -> dict[str, str]:
    """The Preference-Applied header, when a wait was asked for and honoured."""
    return {"Preference-Applied": f"wait={wait_s}"} if wait_s else {}


async def until_finished(
    waiters: TaskWaiters, db: Database, account_id: str, task_id: str, wait_s: float
) -> service.TaskView:
    """The task once it has ended, or as it is after `wait_s` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        with waiters.watch(task_id) as ended:  # watch first: an end during the read counts
            task = await service.get_task(db, account_id, task_id)
            remaining = deadline - loop.time()
            if task.status != "in_progress" or remaining <= 0:
                return task
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), remaining)
