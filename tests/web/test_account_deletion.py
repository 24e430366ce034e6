"""Deleting an account: keys revoked, sessions ended, the email free again; after the
grace period the worker's maintenance purges its tasks, uploads and files in batches,
and the ledger stays."""

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2
from PIL import Image
from sqlalchemy import func, select, update

from mediagate.accounts.deletion import purge_pass
from mediagate.accounts.models import User
from mediagate.accounts.totp import code_at
from mediagate.app import build_runner, create_app
from mediagate.core.clock import utcnow
from mediagate.core.db import Database
from mediagate.core.migrate import upgrade
from mediagate.core.settings import Settings
from mediagate.ledger.models import LedgerTransfer
from mediagate.media.models import Upload
from mediagate.media.storage import LocalStorage
from mediagate.tasks.models import Task
from mediagate.web.models import WebSession
from tests.factories import generation
from tests.web.helpers import PASSWORD, create_key, enrol, later, post_form, sign_in, sign_up


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (512, 512), (200, 80, 40)).save(out, "PNG")
    return out.getvalue()


async def make_things(client: httpx2.AsyncClient, app: Any, tasks: int = 3) -> str:
    """Tasks (finished by a runner) and an upload, with their files; the key's secret."""
    raw = await create_key(client)
    auth = {"Authorization": f"Bearer {raw}"}
    for n in range(tasks):
        made = await client.post(
            "/api/v1/images/generations", json=generation(prompt=f"fox {n}"), headers=auth
        )
        assert made.status_code in (200, 202), made.text
    uploaded = await client.post(
        "/api/v1/uploads", files={"file": ("fox.png", png(), "image/png")}, headers=auth
    )
    assert uploaded.status_code in (200, 201), uploaded.text
    core = app.state.core
    await build_runner(core.db, core.settings, core.catalog, app.state.components).drain()
    return raw


def stored_files(settings: Settings) -> list[Path]:
    return [p for p in settings.files_dir.iterdir() if not p.name.startswith(".")]


async def count(db: Database, model: Any, *where: Any) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)))


async def delete_me(client: httpx2.AsyncClient, **fields: str) -> httpx2.Response:
    values = {"current_password": PASSWORD, "confirm": "delete", **fields}
    return await post_form(client, "/profile", "/profile/delete", **values)


@asynccontextmanager
async def browser(app: Any) -> AsyncIterator[httpx2.AsyncClient]:
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
        yield c


async def test_deleting_revokes_keys_ends_sessions_and_frees_the_email(
    app: Any, db: Database, settings: Settings
) -> None:
    async with browser(app) as client, browser(app) as phone:
        await sign_up(client, "gone@example.com")
        await sign_in(phone, "gone@example.com")
        raw = await make_things(client, app, tasks=1)
        auth = {"Authorization": f"Bearer {raw}"}
        assert (await client.get("/api/v1/account", headers=auth)).status_code == 200

        unconfirmed = await delete_me(client, confirm="")
        assert unconfirmed.status_code == 400 and "Type the word delete" in unconfirmed.text
        wrong = await delete_me(client, current_password="not my password")
        assert wrong.status_code == 400 and "current password is not right" in wrong.text
        assert (await client.get("/api/v1/account", headers=auth)).status_code == 200

        deleted = await delete_me(client)
        assert deleted.status_code == 303 and deleted.headers["location"] == "/login?deleted=1"
        assert "account was deleted" in (await client.get("/login?deleted=1")).text
        assert (await client.get("/api/v1/account", headers=auth)).status_code == 401
        assert (await phone.get("/dashboard")).status_code == 303
        assert await count(db, WebSession) == 0
        client.cookies.clear()
        assert (await sign_in(client, "gone@example.com")).status_code == 400

        # The address is free: a new account, with nothing of the old one's.
        await sign_up(client, "gone@example.com")
        overview = await client.get("/dashboard")
        assert overview.status_code == 200 and 'data-balance="test">100<' in overview.text
        assert "fox 0" not in (await client.get("/tasks")).text
    async with db.read() as session:
        old = await session.scalar(select(User).where(User.deleted_at.is_not(None)))
    assert old is not None and old.deleted_email == "gone@example.com"
    assert old.email.endswith("@deleted.invalid")
    async with browser(app) as stranger:  # not even by the placeholder address
        assert (await sign_in(stranger, old.email)).status_code == 400
    assert stored_files(settings)  # nothing is purged before the grace period


async def test_deleting_with_two_factor_needs_a_code(app: Any, db: Database) -> None:
    async with browser(app) as client:
        await sign_up(client, "guarded@example.com")
        secret, _ = await enrol(client)
        assert "Two-factor code" in (await client.get("/profile")).text
        refused = await delete_me(client, code="000000")
        assert refused.status_code == 400 and "not right" in refused.text
        assert (await client.get("/dashboard")).status_code == 200
        done = await delete_me(client, code=code_at(secret, later(1)))
        assert done.status_code == 303
    assert await count(db, User, User.deleted_at.is_not(None)) == 1


async def test_the_purge_waits_for_the_grace_then_removes_tasks_uploads_and_files(
    app: Any, db: Database, settings: Settings
) -> None:
    async with browser(app) as client, browser(app) as other:
        await sign_up(other, "stays@example.com")
        await make_things(other, app, tasks=1)
        kept_files = set(stored_files(settings))
        await sign_up(client, "purged@example.com")
        await make_things(client, app, tasks=3)
        assert len(stored_files(settings)) > len(kept_files)
        await delete_me(client)
    async with db.read() as session:
        user = await session.scalar(select(User).where(User.deleted_at.is_not(None)))
    assert user is not None
    account = user.account_id
    ledger_rows = await count(db, LedgerTransfer)
    storage = LocalStorage(settings.files_dir)
    grace = timedelta(days=settings.account_delete_grace_days)
    now = utcnow()

    early = await purge_pass(db, storage, grace=grace, batch=100, now=now)
    assert early.tasks == 0 and await count(db, Task, Task.account_id == account) == 3

    later_on = now + grace + timedelta(minutes=1)
    passes = []
    while True:  # batches of 2: 3 tasks and the upload take two full passes; the third
        # finds nothing left and marks the account purged
        report = await purge_pass(db, storage, grace=grace, batch=2, now=later_on)
        passes.append(report)
        if report.accounts_done or len(passes) > 5:
            break
    assert [p.tasks + p.uploads for p in passes] == [2, 2, 0]
    assert [p.accounts_done for p in passes] == [0, 0, 1]
    assert await count(db, Task, Task.account_id == account) == 0
    assert await count(db, Upload, Upload.account_id == account) == 0
    assert set(stored_files(settings)) == kept_files  # the other user's files are all there
    assert await count(db, LedgerTransfer) == ledger_rows  # the books are untouched
    async with db.read() as session:
        purged = await session.get_one(User, user.id)
    assert purged.purged_at is not None
    again = await purge_pass(db, storage, grace=grace, batch=2, now=later_on)
    assert again.tasks == again.uploads == again.accounts_done == 0


async def test_concurrent_purges_remove_everything_once(
    app: Any, db: Database, settings: Settings
) -> None:
    async with browser(app) as client:
        await sign_up(client, "racing@example.com")
        await make_things(client, app, tasks=4)
        await delete_me(client)
    storage = LocalStorage(settings.files_dir)
    grace = timedelta(days=settings.account_delete_grace_days)
    then = utcnow() + grace + timedelta(minutes=1)
    for _ in range(4):
        await asyncio.gather(
            *(purge_pass(db, storage, grace=grace, batch=2, now=then) for _ in range(3))
        )
    assert await count(db, Task) == 0 and await count(db, Upload) == 0
    assert stored_files(settings) == []
    assert await count(db, User, User.purged_at.is_not(None)) == 1


async def test_the_workers_maintenance_runs_the_purge(make_settings: Callable[..., Any]) -> None:
    settings = make_settings(
        embedded_runner=True, account_delete_grace_days=0, account_purge_interval_s=0.05
    )
    await asyncio.to_thread(upgrade, settings)
    app = create_app(settings)
    async with app.router.lifespan_context(app), browser(app) as client:
        await sign_up(client, "worker@example.com")
        await make_things(client, app, tasks=2)
        db = app.state.core.db
        await delete_me(client)
        async with asyncio.timeout(20):
            while not await count(db, User, User.purged_at.is_not(None)):
                await asyncio.sleep(0.05)
        assert await count(db, Task) == 0
    assert stored_files(settings) == []


async def test_a_deleted_users_old_session_cookie_is_refused(app: Any, db: Database) -> None:
    """Even a session row left behind (a race with the deletion) signs in no one."""
    async with browser(app) as client:
        await sign_up(client, "ghost@example.com")
        token = client.cookies["mg_session"]
        async with db.write() as session:
            await session.execute(update(User).values(deleted_at=utcnow()))
        client.cookies.set("mg_session", token, domain="gateway.test")
        assert (await client.get("/dashboard")).status_code == 303
