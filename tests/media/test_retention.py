"""Result retention on both storage backends (the data directory, and a real moto S3
server on loopback): finished tasks' files and uploads are deleted once expired, a
bounded batch per run, their rows marked, the task object shows them expired and their
URLs answer 410; sweepers side by side or after a crash delete each file once and fail
nothing; uploaded objects that never got a row are swept after a grace period."""

import asyncio
import contextlib
import io
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from PIL import Image
from sqlalchemy import select, update

from mediagate.app import build_runner, create_app
from mediagate.core.clock import utcnow
from mediagate.core.db import Database
from mediagate.core.ids import new_id, random_base62
from mediagate.core.migrate import upgrade
from mediagate.core.settings import Settings
from mediagate.media.models import ExpiredFile, Upload
from mediagate.media.retention import CLAIM, RetentionSweeper, task_keys
from mediagate.media.storage import LocalStorage, Storage, build_storage
from mediagate.tasks.models import Task
from tests.factories import KeyFactory, MadeKey, generation
from tests.services import s3_server, s3_storage

BUCKET = "mediagate-retention"
DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with s3_server(BUCKET) as url:
        yield url


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def retention_settings(
    backend: str, make_settings: Callable[..., Settings], request: pytest.FixtureRequest
) -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        storage: dict[str, object] = {}
        if backend == "s3":
            endpoint = request.getfixturevalue("endpoint")
            storage = s3_storage(endpoint, BUCKET, f"r{secrets.token_hex(4)}/")
            storage["s3_serve"] = "proxy"
        return make_settings(**storage, public_base_url="http://gateway.test", **overrides)

    return make


@dataclass
class Gateway:
    app: Any
    client: httpx2.AsyncClient
    key: MadeKey

    @property
    def db(self) -> Database:
        return self.app.state.core.db  # type: ignore[no-any-return]

    @property
    def storage(self) -> Storage:
        return self.app.state.storage  # type: ignore[no-any-return]

    @property
    def settings(self) -> Settings:
        return self.app.state.core.settings  # type: ignore[no-any-return]

    def sweeper(self) -> RetentionSweeper:
        return RetentionSweeper(self.db, self.storage, self.settings)

    async def generate(self, **fields: object) -> dict[str, Any]:
        submitted = await self.client.post(
            "/api/v1/images/generations", json=generation(**fields), headers=self.key.headers
        )
        assert submitted.status_code == 200, submitted.text
        core = self.app.state.core
        await build_runner(core.db, core.settings, core.catalog, self.app.state.components).drain()
        return await self.task(submitted.json()["data"]["task_id"])

    async def task(self, task_id: str) -> dict[str, Any]:
        answer = await self.client.get(f"/api/v1/tasks/{task_id}", headers=self.key.headers)
        assert answer.status_code == 200, answer.text
        return dict(answer.json()["data"])

    async def upload(self, size: tuple[int, int] = (600, 400)) -> dict[str, Any]:
        answer = await self.client.post(
            "/api/v1/uploads",
            content=png(size),
            headers={**self.key.headers, "Content-Type": "image/png"},
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json()["data"])

    async def get(self, url: str) -> httpx2.Response:
        return await self.client.get(url.removeprefix("http://gateway.test"))


def png(size: tuple[int, int], color: tuple[int, int, int] = (0, 90, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
async def gateway_factory(
    retention_settings: Callable[..., Settings],
) -> AsyncIterator[Callable[..., Any]]:
    async with contextlib.AsyncExitStack() as stack:

        async def open_gateway(**overrides: object) -> Gateway:
            settings = retention_settings(**overrides)
            await asyncio.to_thread(upgrade, settings)
            app = create_app(settings)
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = await stack.enter_async_context(
                httpx2.AsyncClient(
                    transport=httpx2.ASGITransport(app=app), base_url="http://gateway.test"
                )
            )
            core = app.state.core
            key = await KeyFactory(core.db, core.settings)(credits=500)
            return Gateway(app, client, key)

        yield open_gateway


@pytest.fixture
async def gateway(gateway_factory: Callable[..., Any]) -> Gateway:
    return await gateway_factory()  # type: ignore[no-any-return]


def output_urls(task: dict[str, Any]) -> list[str]:
    return [
        url
        for image in task["output"]["images"]
        for url in (image["url"], image["thumbnail"]["url"])
    ]


async def test_expired_results_are_deleted_marked_and_answer_410(gateway: Gateway) -> None:
    task = await gateway.generate(num_images=2, aspect_ratio="16:9")
    completed = datetime.fromisoformat(task["completed_at"])
    for image in task["output"]["images"]:
        assert datetime.fromisoformat(image["expires_at"]) == completed + 30 * DAY
        assert image["expired"] is False
    urls = output_urls(task)
    for url in urls:
        assert (await gateway.get(url)).status_code == 200

    sweeper = gateway.sweeper()
    early = await sweeper.run_once(utcnow() + 29 * DAY)
    assert (early.tasks, early.files) == (0, 0)
    report = await sweeper.run_once(utcnow() + 31 * DAY)
    assert (report.tasks, report.files) == (1, 4)  # two results, two thumbnails

    for url in urls:
        key = url.rsplit("/", 1)[1]
        assert await gateway.storage.get(key) is None
        gone = await gateway.get(url)
        assert gone.status_code == 410, gone.text
        error = gone.json()["error"]
        assert error["type"] == "expired" and "expired and was deleted" in error["message"]
    never = await gateway.get("/files/abcdefghijklmnopqrst.png")
    assert never.status_code == 404

    shown = await gateway.task(task["task_id"])
    assert shown["status"] == "completed"
    for image in shown["output"]["images"]:
        assert image["url"] is None and image["thumbnail"]["url"] is None
        assert (
            image["expired"] is True
            and image["expires_at"] == task["output"]["images"][0]["expires_at"]
        )
    async with gateway.db.read() as session:
        row = await session.get_one(Task, task["task_id"])
        tombstones = set(await session.scalars(select(ExpiredFile.key)))
    assert row.files_expired_at is not None
    assert tombstones == {url.rsplit("/", 1)[1] for url in urls}
    again = await sweeper.run_once(utcnow() + 32 * DAY)
    assert (again.tasks, again.files) == (0, 0)


async def test_each_mode_keeps_its_own_days_and_zero_keeps_forever(
    gateway_factory: Callable[..., Any],
) -> None:
    gateway: Gateway = await gateway_factory(retention_days_test=0, retention_days_uploads=0)
    task = await gateway.generate()
    upload = await gateway.upload()
    assert task["output"]["images"][0]["expires_at"] is None
    assert upload["expires_at"] is None
    report = await gateway.sweeper().run_once(utcnow() + 3650 * DAY)
    assert (report.tasks, report.uploads, report.files) == (0, 0, 0)
    assert (await gateway.get(task["output"]["images"][0]["url"])).status_code == 200
    assert (await gateway.get(upload["url"])).status_code == 200


async def finished_task(gateway: Gateway, *, files: int = 2, age: timedelta = 40 * DAY) -> str:
    """A finished task row naming `files` stored files (written as the runner writes them)."""
    task_id = new_id("task", 24)
    done = utcnow() - age
    images = []
    for index in range(files):
        key = f"{random_base62(40)}.png"
        await gateway.storage.put(key, png((8, 8), (index, 0, 0)))
        images.append({"key": key, "width": 8, "height": 8})
    async with gateway.db.write() as session:
        session.add(
            Task(
                id=task_id,
                account_id=gateway.key.account_id,
                key_id=gateway.key.id,
                mode="test",
                model="kling-image-o1",
                type="text-to-image",
                params={"prompt": "old"},
                price=1,
                status="completed",
                step="done",
                next_run_at=done,
                deadline_at=done,
                attempt=1,
                step_errors=0,
                polls=0,
                images=images,
                created_at=done,
                updated_at=done,
                completed_at=done,
            )
        )
    return task_id


async def stored_keys(gateway: Gateway, task_ids: list[str]) -> list[str]:
    async with gateway.db.read() as session:
        rows = await session.scalars(select(Task).where(Task.id.in_(task_ids)))
        return [key for row in rows for key in task_keys(row)]


async def test_a_run_handles_at_most_one_batch(gateway_factory: Callable[..., Any]) -> None:
    gateway: Gateway = await gateway_factory(retention_batch=2)
    ids = [await finished_task(gateway, files=1) for _ in range(5)]
    sweeper = gateway.sweeper()
    runs = [await sweeper.run_once() for _ in range(4)]
    assert [r.tasks for r in runs] == [2, 2, 1, 0]
    for key in await stored_keys(gateway, ids):
        assert await gateway.storage.get(key) is None
    async with gateway.db.read() as session:
        kept = await session.scalars(select(Task.id).where(Task.files_expired_at.is_(None)))
        assert list(kept) == []


async def test_two_sweepers_at_once_delete_each_file_once(
    gateway: Gateway, retention_settings: Callable[..., Settings]
) -> None:
    ids = [await finished_task(gateway, files=3) for _ in range(12)]
    keys = await stored_keys(gateway, ids)
    # Two workers: each its own database connections and storage client.
    other_db = Database(gateway.settings.db_url)
    try:
        first = RetentionSweeper(gateway.db, gateway.storage, gateway.settings)
        second = RetentionSweeper(other_db, build_storage(gateway.settings), gateway.settings)
        reports = await asyncio.gather(*(s.run_once() for s in (first, second, first, second)))
    finally:
        await other_db.dispose()
    assert sum(r.tasks for r in reports) == 12
    assert sum(r.files for r in reports) == len(keys) == 36
    for key in keys:
        assert await gateway.storage.get(key) is None


async def test_a_sweeper_that_died_after_deleting_is_finished_by_the_next(
    gateway: Gateway,
) -> None:
    task_id = await finished_task(gateway, files=2)
    keys = await stored_keys(gateway, [task_id])
    now = utcnow()
    # What a sweeper leaves when it dies between deleting and marking: its claim, and
    # some of the files deleted.
    async with gateway.db.write() as session:
        await session.execute(
            update(Task).where(Task.id == task_id).values(sweep_until=now + CLAIM)
        )
    await gateway.storage.delete_many(keys[:1])

    sweeper = gateway.sweeper()
    assert (await sweeper.run_once(now)).tasks == 0  # still claimed: left alone
    later = await sweeper.run_once(now + CLAIM + timedelta(seconds=1))
    assert (later.tasks, later.files) == (1, 2)  # the deleted one again, harmlessly
    for key in keys:
        assert await gateway.storage.get(key) is None
    async with gateway.db.read() as session:
        row = await session.get_one(Task, task_id)
        assert row.files_expired_at is not None and row.sweep_until is None


async def test_expired_uploads_are_deleted_and_answer_410(gateway: Gateway) -> None:
    upload = await gateway.upload()
    created = utcnow()
    expires = datetime.fromisoformat(upload["expires_at"])
    assert created + 29 * DAY < expires <= created + 30 * DAY
    assert (await gateway.get(upload["url"])).status_code == 200
    sweeper = gateway.sweeper()
    assert (await sweeper.run_once(utcnow() + 29 * DAY)).uploads == 0
    report = await sweeper.run_once(utcnow() + 31 * DAY)
    assert (report.uploads, report.orphans) == (1, 0)
    gone = await gateway.get(upload["url"])
    assert gone.status_code == 410 and gone.json()["error"]["type"] == "expired"
    async with gateway.db.read() as session:
        row = await session.get_one(Upload, upload["id"])
    assert row.expired_at is not None

    # A task naming the expired upload is refused with the reason, nothing charged.
    task = await gateway.generate(images=[upload["url"]])
    assert task["status"] == "failed" and task["credits"] == 0
    assert "images[0]" in task["error"]["message"] and "expires_at" in task["error"]["message"]


async def test_orphaned_upload_objects_are_swept_after_the_grace_period(
    gateway_factory: Callable[..., Any],
) -> None:
    gateway: Gateway = await gateway_factory(retention_batch=2, orphan_upload_grace_s=3600)
    kept = await gateway.upload()
    orphans = [f"up_{random_base62(32)}.png" for _ in range(3)]
    for key in orphans:  # the file written, the process gone before the row
        await gateway.storage.put(key, png((8, 8)))
    result_key = f"{random_base62(40)}.png"  # not an upload: never an orphan of this sweep
    await gateway.storage.put(result_key, png((8, 8)))

    sweeper = gateway.sweeper()
    soon = [await sweeper.run_once(utcnow() + timedelta(minutes=30)) for _ in range(3)]
    assert sum(r.orphans for r in soon) == 0  # within the grace period: maybe mid-upload
    later = utcnow() + timedelta(hours=2)
    runs = [await sweeper.run_once(later) for _ in range(3)]  # two listed per run
    assert sum(r.orphans for r in runs) == 3
    for key in orphans:
        assert await gateway.storage.get(key) is None
    assert (await gateway.get(kept["url"])).status_code == 200
    assert await gateway.storage.get(result_key) is not None


async def test_storage_lists_by_prefix_in_order_and_deletes_in_batches(gateway: Gateway) -> None:
    keys = sorted(f"up_{random_base62(32)}.png" for _ in range(5))
    for key in keys:
        await gateway.storage.put(key, png((4, 4)))
    first = await gateway.storage.list_keys("up_", start_after="", limit=3)
    rest = await gateway.storage.list_keys("up_", start_after=first[-1].key, limit=3)
    assert [o.key for o in first + rest] == keys
    assert all(abs(o.modified_at - utcnow()) < timedelta(minutes=5) for o in first + rest)
    await gateway.storage.delete_many([*keys[:2], "up_neverexisted0123456789.png", "../x.png"])
    left = await gateway.storage.list_keys("up_", start_after="", limit=10)
    assert [o.key for o in left] == keys[2:]


async def test_local_listing_reports_each_files_time(tmp_path: Path) -> None:
    """What the orphans' grace period is counted from, on local storage."""
    storage = LocalStorage(tmp_path)
    key = f"up_{random_base62(32)}.png"
    (tmp_path / key).write_bytes(b"x")
    old = (utcnow() - 3 * DAY).timestamp()
    os.utime(tmp_path / key, (old, old))
    (listed,) = await storage.list_keys("up_", start_after="", limit=5)
    assert abs(listed.modified_at - (utcnow() - 3 * DAY)) < timedelta(seconds=5)


async def test_every_worker_sweeps_from_its_own_loop(gateway_factory: Callable[..., Any]) -> None:
    gateway: Gateway = await gateway_factory(reconcile_interval_s=0.05, retention_interval_s=0.1)
    task_id = await finished_task(gateway, files=2)
    keys = await stored_keys(gateway, [task_id])
    core = gateway.app.state.core
    runner = build_runner(core.db, core.settings, core.catalog, gateway.app.state.components)
    swept = runner.metrics.retention_swept
    worker = asyncio.create_task(runner.run())
    try:
        async with asyncio.timeout(20):  # until the sweep has run to its end
            while swept.labels("tasks")._value.get() < 1:
                await asyncio.sleep(0.05)
    finally:
        await runner.stop()
        await worker
    assert swept.labels("files")._value.get() == 2
    for key in keys:
        assert await gateway.storage.get(key) is None
    async with gateway.db.read() as session:
        assert (await session.get_one(Task, task_id)).files_expired_at is not None
