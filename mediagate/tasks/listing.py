"""GET /api/v1/tasks: the account's tasks, newest first, a page at a time.

Pages are keyset pages on (created_at, id), read through the index
ix_tasks_account_created_id; the cursor is the last row's key, encoded. Rows inserted
while a client pages are newer than its cursor, so they never shift a later page: no row
that existed when paging started is skipped or shown twice (an offset would do both).
"""

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select

from mediagate.core.db import Database
from mediagate.core.errors import InvalidRequest
from mediagate.tasks.models import Task
from mediagate.tasks.service import API_STATUS, TaskView

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
PARAMS = ("status", "model", "created_after", "created_before", "limit", "cursor")
_STATUS_FROM_API = {api.lower(): stored for stored, api in API_STATUS.items()}


@dataclass(frozen=True)
class Cursor:
    created_at: datetime
    id: str

    def encode(self) -> str:
        raw = json.dumps([self.created_at.isoformat(), self.id], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> "Cursor":
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            created, task_id = json.loads(raw)
            when = datetime.fromisoformat(created)
            if when.tzinfo is None or not isinstance(task_id, str):
                raise ValueError("not a cursor")
        except (binascii.Error, UnicodeDecodeError, ValueError, TypeError) as exc:
            raise InvalidRequest(
                "cursor is not a cursor this API returned (pass next_cursor as it is)",
                param="cursor",
            ) from exc
        return cls(when, task_id)


@dataclass(frozen=True)
class TaskFilter:
    status: str | None = None
    """As stored (in_progress, completed, failed)."""
    model: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    limit: int = DEFAULT_LIMIT
    cursor: Cursor | None = None


def parse_filter(query: Mapping[str, str], repeated: set[str]) -> TaskFilter:
    """The query string checked: every problem is a 400 naming its parameter."""
    unknown = sorted(set(query) - set(PARAMS))
    if unknown:
        raise InvalidRequest(
            f"Unknown query parameter: {unknown[0]} (this route takes {', '.join(PARAMS)})",
            param=unknown[0],
        )
    for name in sorted(repeated):
        raise InvalidRequest(f"{name} may be given only once", param=name)
    status = query.get("status")
    if status is not None:
        stored = _STATUS_FROM_API.get(status.lower())
        if stored is None:
            raise InvalidRequest(
                f"status must be one of: {', '.join(API_STATUS.values())}", param="status"
            )
        status = stored
    model = query.get("model")
    if model is not None and not 1 <= len(model) <= 100:
        raise InvalidRequest("model must be 1-100 characters", param="model")
    after = _timestamp(query, "created_after")
    before = _timestamp(query, "created_before")
    raw_limit = query.get("limit")
    limit = DEFAULT_LIMIT
    if raw_limit is not None:
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
            raise InvalidRequest(f"limit must be an integer from 1 to {MAX_LIMIT}", param="limit")
        limit = int(raw_limit)
    raw_cursor = query.get("cursor")
    cursor = Cursor.decode(raw_cursor) if raw_cursor is not None else None
    return TaskFilter(status, model, after, before, limit, cursor)


def _timestamp(query: Mapping[str, str], name: str) -> datetime | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise InvalidRequest(
            f"{name} must be an RFC 3339 timestamp with a time zone, e.g. 2026-11-23T10:00:00Z",
            param=name,
        )
    return value


_VIEW_COLUMNS = tuple(getattr(Task, name) for name in TaskView._fields)


async def list_tasks(
    db: Database, account_id: str, rules: TaskFilter
) -> tuple[list[TaskView], Cursor | None]:
    """One page of the account's tasks, newest first, and the cursor of the next page."""
    query = select(*_VIEW_COLUMNS).where(Task.account_id == account_id)
    if rules.status is not None:
        query = query.where(Task.status == rules.status)
    if rules.model is not None:
        query = query.where(Task.model == rules.model)
    if rules.created_after is not None:
        query = query.where(Task.created_at > rules.created_after)
    if rules.created_before is not None:
        query = query.where(Task.created_at < rules.created_before)
    if rules.cursor is not None:
        at, last = rules.cursor.created_at, rules.cursor.id
        # `created_at <= at` first: the index range; the OR breaks ties on the id.
        query = query.where(
            Task.created_at <= at,
            or_(Task.created_at < at, and_(Task.created_at == at, Task.id < last)),
        )
    query = query.order_by(Task.created_at.desc(), Task.id.desc()).limit(rules.limit + 1)
    async with db.read() as session:
        rows = (await session.execute(query)).all()
    tasks = [TaskView(*row) for row in rows[: rules.limit]]
    more = len(rows) > rules.limit
    return tasks, Cursor(tasks[-1].created_at, tasks[-1].id) if more else None
