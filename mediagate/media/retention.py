"""The retention sweeper: deletes the files of tasks and uploads past their retention
(media/expiry.py) and uploaded objects that never got their row, a bounded batch a run.

Safe beside other sweepers (every worker runs one) and against crashes at any point:
1. claim: in one transaction, pick expired rows not claimed by anyone else (PostgreSQL:
   `FOR UPDATE SKIP LOCKED`; SQLite: the write unit holds the only write lock) and set
   their `sweep_until`; another sweeper skips them until then;
2. delete their objects from storage (a key already gone is no error);
3. mark the rows (`files_expired_at` / `expired_at`) and record the keys in
   `expired_files`, so GET /files/{key} answers 410 Gone.
A sweeper that dies between 2 and 3 leaves a claim that runs out: the next sweeper
deletes the same keys again (harmlessly) and marks the rows.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from mediagate.core.clock import utcnow
from mediagate.core.db import Database
from mediagate.core.settings import Settings
from mediagate.media.expiry import Retention
from mediagate.media.models import ExpiredFile, Upload
from mediagate.media.storage import Storage
from mediagate.tasks.models import Task

log = logging.getLogger("mediagate.retention")
AnySelect = Select[*tuple[Any, ...]]
CLAIM = timedelta(minutes=10)
"""How long a sweeper's claim keeps others off its rows: far longer than deleting one
batch takes; a crashed sweeper's rows wait this long for the next one."""
UPLOAD_PREFIX = "up_"
"""Every upload's storage key starts with it (media/uploads.py)."""
KEY_CHUNK = 500
"""Keys per `IN (...)` list when asking which listed objects have an upload row."""


@dataclass(frozen=True)
class SweepReport:
    tasks: int
    """Tasks whose files were deleted and marked."""
    uploads: int
    orphans: int
    """Uploaded objects deleted because no upload row names them."""
    files: int
    """Storage keys deleted in all."""


class RetentionSweeper:
    def __init__(self, db: Database, storage: Storage, settings: Settings) -> None:
        self.db = db
        self.storage = storage
        self.retention = Retention.from_settings(settings)
        self.batch = settings.retention_batch
        self.orphan_grace = timedelta(seconds=settings.orphan_upload_grace_s)
        self._orphan_cursor = ""
        """Where the next orphan scan continues: each run lists one batch of upload
        objects, and the scan starts over from the first key after the last."""

    async def run_once(self, now: datetime | None = None) -> SweepReport:
        now = now or utcnow()
        tasks, task_keys = await self._sweep_tasks(now)
        uploads, upload_keys = await self._sweep_uploads(now)
        orphans = await self._sweep_orphans(now)
        report = SweepReport(tasks, uploads, orphans, task_keys + upload_keys + orphans)
        if report.files or report.tasks or report.uploads:
            log.info(
                "retention: %d files deleted (%d tasks, %d uploads, %d orphaned uploads)",
                report.files,
                report.tasks,
                report.uploads,
                report.orphans,
            )
        return report

    async def _sweep_tasks(self, now: datetime) -> tuple[int, int]:
        async with self.db.write() as session:
            rows = await _claim(session, self._expired_tasks(now), Task, now)
        if not rows:
            return 0, 0
        keys = [key for task in rows for key in task_keys(task)]
        await self.storage.delete_many(keys)
        async with self.db.write() as session:
            await _tombstones(session, keys, now)
            await session.execute(
                update(Task)
                .where(Task.id.in_([task.id for task in rows]), Task.files_expired_at.is_(None))
                .values(files_expired_at=now, sweep_until=None)
                .execution_options(synchronize_session=False)
            )
        return len(rows), len(keys)

    def _expired_tasks(self, now: datetime) -> AnySelect:
        per_mode = [
            (Task.mode == mode) & (Task.completed_at < cutoff)
            for mode in ("live", "test")
            if (cutoff := self.retention.task_cutoff(mode, now)) is not None
        ]
        query = select(Task.id, Task.images, Task.videos, Task.prepared).where(
            Task.files_expired_at.is_(None),
            Task.completed_at.is_not(None),
            or_(Task.sweep_until.is_(None), Task.sweep_until < now),
        )
        if not per_mode:
            return query.where(Task.id.is_(None))  # every mode is kept forever
        return query.where(or_(*per_mode)).order_by(Task.completed_at).limit(self.batch)

    async def _sweep_uploads(self, now: datetime) -> tuple[int, int]:
        cutoff = self.retention.upload_cutoff(now)
        if cutoff is None:
            return 0, 0
        query = (
            select(Upload.id, Upload.key)
            .where(
                Upload.expired_at.is_(None),
                Upload.created_at < cutoff,
                or_(Upload.sweep_until.is_(None), Upload.sweep_until < now),
            )
            .order_by(Upload.created_at)
            .limit(self.batch)
        )
        async with self.db.write() as session:
            rows = await _claim(session, query, Upload, now)
        if not rows:
            return 0, 0
        keys = [row.key for row in rows]
        await self.storage.delete_many(keys)
        async with self.db.write() as session:
            await _tombstones(session, keys, now)
            await session.execute(
                update(Upload)
                .where(Upload.id.in_([row.id for row in rows]), Upload.expired_at.is_(None))
                .values(expired_at=now, sweep_until=None)
                .execution_options(synchronize_session=False)
            )
        return len(rows), len(keys)

    async def _sweep_orphans(self, now: datetime) -> int:
        """Upload objects older than the grace period that no upload row names: the file
        was stored and the process died before the row was written."""
        listed = await self.storage.list_keys(
            UPLOAD_PREFIX, start_after=self._orphan_cursor, limit=self.batch
        )
        self._orphan_cursor = listed[-1].key if len(listed) == self.batch else ""
        old = [o.key for o in listed if o.modified_at < now - self.orphan_grace]
        if not old:
            return 0
        known: set[str] = set()
        async with self.db.read() as session:
            for chunk in _chunks(old, KEY_CHUNK):
                known.update(await session.scalars(select(Upload.key).where(Upload.key.in_(chunk))))
        orphans = [key for key in old if key not in known]
        if orphans:
            await self.storage.delete_many(orphans)
        return len(orphans)


async def _claim(
    session: AsyncSession, query: AnySelect, table: type[Task] | type[Upload], now: datetime
) -> list[Any]:
    """The rows `query` picks, claimed for this sweeper until now + CLAIM."""
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = list((await session.execute(query)).all())
    if rows:
        await session.execute(
            update(table)
            .where(table.id.in_([row.id for row in rows]))
            .values(sweep_until=now + CLAIM)
            .execution_options(synchronize_session=False)
        )
    return rows


async def _tombstones(session: AsyncSession, keys: list[str], now: datetime) -> None:
    """Record deleted keys (a key recorded before, by a sweeper that crashed after this,
    is left as it is)."""
    if not keys:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(ExpiredFile).on_conflict_do_nothing(index_elements=["key"])
    for chunk in _chunks(keys, KEY_CHUNK):
        await session.execute(statement, [{"key": key, "expired_at": now} for key in chunk])


def task_keys(task: Any) -> list[str]:
    """Every storage key a task's row names: results, their thumbnails, videos and their
    posters, and the stored copies of its reference images."""
    keys: list[str] = []
    for image in task.images or []:
        keys.append(image["key"])
        if image.get("thumb"):
            keys.append(image["thumb"]["key"])
    for video in task.videos or []:
        keys.append(video["key"])
        if video.get("poster"):
            keys.append(video["poster"]["key"])
    keys.extend(ref["key"] for ref in (task.prepared or {}).get("references", []))
    return keys


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
