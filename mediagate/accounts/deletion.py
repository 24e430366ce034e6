"""Deleting an account, and purging it after the grace period.

Deletion is one transaction: every API key revoked, every session ended, the user marked
deleted (refused at sign-in) and its email moved aside (`deleted_email`), so the address
can sign up again; the account's name is moved aside likewise. After
MEDIAGATE_ACCOUNT_DELETE_GRACE_DAYS the worker's maintenance (runner/runner.py) purges
the account's finished tasks, uploads and their files in bounded batches. The ledger is
never touched: it stays for the operator's books.

A purge pass deletes the files first (deleting a missing file is not an error), then the
rows by id: a pass that dies half way leaves rows whose files are gone, and the next pass
finishes them. Two workers purging at once may delete the same files twice, harmlessly;
each row goes once."""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mediagate.accounts.models import Account, User
from mediagate.core.db import Database
from mediagate.keys.models import ApiKey
from mediagate.media.models import Upload
from mediagate.media.retention import task_keys
from mediagate.tasks.models import IdempotencyKey, Task
from mediagate.web.models import WebSession
from mediagate.webhooks.models import CallbackDelivery

log = logging.getLogger("mediagate.accounts")
IN_PROGRESS = "in_progress"  # left to finish (and settle its hold); purged later


class Deletes(Protocol):
    async def delete(self, key: str) -> None: ...


async def delete_account(session: AsyncSession, user_id: str, now: datetime) -> str:
    """Delete the user's account (see the module's text); its email, for the goodbye."""
    user = await session.get_one(User, user_id)
    email = user.email
    await session.execute(
        update(ApiKey)
        .where(ApiKey.account_id == user.account_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.execute(delete(WebSession).where(WebSession.user_id == user_id))
    aside = f"deleted-{user.id}@deleted.invalid"  # .invalid: never a real address (RFC 2606)
    user.deleted_email = email
    user.email = aside
    user.deleted_at = now
    user.totp_secret = None
    user.totp_enabled_at = None
    account = await session.get_one(Account, user.account_id)
    account.name = aside
    await session.flush()
    return email


@dataclass(frozen=True)
class PurgeReport:
    tasks: int = 0
    uploads: int = 0
    files: int = 0
    accounts_done: int = 0


async def purge_pass(
    db: Database, storage: Deletes, *, grace: timedelta, batch: int, now: datetime
) -> PurgeReport:
    """One bounded pass over the accounts deleted more than `grace` ago."""
    async with db.read() as session:
        due = (
            await session.execute(
                select(User.id, User.account_id)
                .where(
                    User.deleted_at.is_not(None),
                    User.deleted_at < now - grace,
                    User.purged_at.is_(None),
                )
                .order_by(User.deleted_at)
                .limit(batch)
            )
        ).all()
    report = PurgeReport()
    for user_id, account_id in due:
        left = batch - report.tasks - report.uploads
        if left <= 0:
            break
        done = await _purge_account(db, storage, user_id, account_id, left, now)
        report = PurgeReport(
            tasks=report.tasks + done.tasks,
            uploads=report.uploads + done.uploads,
            files=report.files + done.files,
            accounts_done=report.accounts_done + done.accounts_done,
        )
    if report.tasks or report.uploads or report.accounts_done:
        log.info(
            "purged %d tasks, %d uploads, %d files; %d deleted accounts now empty",
            report.tasks,
            report.uploads,
            report.files,
            report.accounts_done,
        )
    return report


async def _purge_account(
    db: Database, storage: Deletes, user_id: str, account_id: str, limit: int, now: datetime
) -> PurgeReport:
    async with db.read() as session:
        tasks = list(
            await session.scalars(
                select(Task)
                .where(Task.account_id == account_id, Task.status != IN_PROGRESS)
                .limit(limit)
            )
        )
        uploads = list(
            await session.scalars(
                select(Upload).where(Upload.account_id == account_id).limit(limit - len(tasks))
            )
        )
        unfinished = await session.scalar(
            select(Task.id)
            .where(Task.account_id == account_id, Task.status == IN_PROGRESS)
            .limit(1)
        )
    files = [key for t in tasks for key in task_keys(t)] + [u.key for u in uploads]
    for key in files:
        await storage.delete(key)
    task_ids = [t.id for t in tasks]
    async with db.write() as session:
        if task_ids:
            await session.execute(
                delete(CallbackDelivery).where(CallbackDelivery.task_id.in_(task_ids))
            )
            await session.execute(
                delete(IdempotencyKey).where(
                    IdempotencyKey.account_id == account_id, IdempotencyKey.task_id.in_(task_ids)
                )
            )
            await session.execute(delete(Task).where(Task.id.in_(task_ids)))
        if uploads:
            await session.execute(delete(Upload).where(Upload.id.in_([u.id for u in uploads])))
        finished = unfinished is None and len(tasks) + len(uploads) < limit
        if finished:  # nothing was left beyond this pass: the account is empty now
            await session.execute(
                delete(IdempotencyKey).where(IdempotencyKey.account_id == account_id)
            )
            await session.execute(
                update(User)
                .where(User.id == user_id, User.purged_at.is_(None))
                .values(purged_at=now)
                .execution_options(synchronize_session=False)
            )
    return PurgeReport(
        tasks=len(tasks), uploads=len(uploads), files=len(files), accounts_done=int(finished)
    )
