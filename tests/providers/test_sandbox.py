"""The sandbox under hostile references: decoded-size refusals, one decode per reference
per task, rendering on a small bounded pool of threads off the event loop (finding 4)."""

import asyncio
import io
import threading
import time
from typing import Any

import httpx2
import pytest
from PIL import Image
from sqlalchemy import update

from mediagate.core.clock import utcnow
from mediagate.core.db import Database
from mediagate.core.ids import random_base62
from mediagate.ledger import service as ledger
from mediagate.providers.registry import ProviderRegistry
from mediagate.providers.render_pool import THREAD_PREFIX, RenderPool
from mediagate.providers.sandbox import SandboxProvider
from mediagate.providers.sandbox_render import thumbnail
from mediagate.runner.runner import Runner
from mediagate.tasks.models import Task
from tests.factories import KeyFactory
from tests.media.test_images import png_16bit_rgba
from tests.runner.test_runner import fetch, make_runner, submit, transfers

COLOUR = (10, 200, 30)


def large_png(width: int = 4000, height: int = 3000) -> bytes:
    """A legitimate large reference: 12 MP of RGB, 48 MB decoded, well under the caps."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), COLOUR).save(out, format="PNG")
    return out.getvalue()


async def own_file(app: Any, data: bytes) -> str:
    """`data` as an uploaded file (put in storage directly, past the upload checks), by
    the URL a client would use in `images`."""
    key = f"up_{random_base62(32)}.png"
    await app.state.storage.put(key, data)
    return f"http://127.0.0.1:8000/files/{key}"


class CountingThumbnailer:
    """The sandbox's decode seam: counts decodes, notes their threads, and can hold each
    one until released."""

    def __init__(self, *, held: bool = False) -> None:
        self.lock = threading.Lock()
        self.threads: list[str] = []
        self.active = 0
        self.most_active = 0
        self.release = threading.Event()
        if not held:
            self.release.set()

    @property
    def calls(self) -> int:
        return len(self.threads)

    def __call__(self, data: bytes, box: tuple[int, int]) -> Image.Image:
        with self.lock:
            self.threads.append(threading.current_thread().name)
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            self.release.wait(10)
            return thumbnail(data, box)
        finally:
            with self.lock:
                self.active -= 1


def counted_runner(
    app: Any,
    thumbnailer: CountingThumbnailer,
    *,
    threads: int = 2,
    wait_s: float = 5.0,
    budget_s: float = 4.0,
) -> tuple[Runner, RenderPool]:
    pool = RenderPool(threads, wait_s=wait_s)
    sandbox = SandboxProvider(
        app.state.core.db,
        app.state.storage,
        pool=pool,
        latency_s=0.0,
        thumbnailer=thumbnailer,
        thumbnail_budget_s=budget_s,
    )
    return make_runner(app, providers=ProviderRegistry(sandbox, live={})), pool


async def until(condition: Any, what: str) -> None:
    """Let the loop run until `condition()` holds (bounded, so a broken build fails; the
    bound is generous: a busy 2-core CI machine took over 10 s to get there once)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def test_finding_4_sixteen_bit_references_fail_the_task_by_index_and_charge_nothing(
    app: Any, client: httpx2.AsyncClient, keys: KeyFactory, db: Database
) -> None:
    key = await keys(credits=20)
    bomb = png_16bit_rgba(6000, 6000)  # ~290 KB, 6000x6000: within max_bytes and max_pixels
    urls = [await own_file(app, bomb), await own_file(app, large_png(600, 600))]
    task_id = await submit(client, key, images=[urls[0], urls[1], urls[0]], num_images=2)
    await make_runner(app).drain()
    task = await fetch(client, key, task_id)
    assert task["status"] == "failed" and task["credits"] == 0
    assert task["error"]["type"] == "invalid_image"
    message = task["error"]["message"]
    too_large = "too large to decode (6000x6000 RGBA PNG: 144000000 bytes of memory"
    assert f"images[0]: {too_large}" in message and f"images[2]: {too_large}" in message
    assert "images[1]" not in message
    assert await transfers(db, task_id) == ["hold", "release"]
    async with db.read() as s:
        assert await ledger.balance(s, key.account_id, "test") == ledger.Balance(posted=20, held=0)
    upload = await client.post(
        "/api/v1/uploads", content=bomb, headers={**key.headers, "Content-Type": "image/png"}
    )
    assert upload.status_code == 400
    assert upload.json()["error"]["param"] == "file" and too_large in upload.json()["message"]


async def test_each_reference_is_decoded_once_per_task_however_many_images(
    app: Any, client: httpx2.AsyncClient, keys: KeyFactory, settings: Any
) -> None:
    key = await keys(credits=100)
    thumbnailer = CountingThumbnailer()
    runner, _ = counted_runner(app, thumbnailer)
    references = [await own_file(app, large_png()), await own_file(app, large_png(3000, 4000))]
    many = await submit(client, key, images=references, num_images=9)
    await runner.drain()
    task = await fetch(client, key, many)
    assert task["status"] == "completed" and len(task["output"]["images"]) == 9
    assert thumbnailer.calls == 2  # not 2 x 9
    first = settings.files_dir / task["output"]["images"][0]["url"].rsplit("/", 1)[1]
    with Image.open(first) as output:
        assert output.convert("RGB").getpixel((100, 900)) == COLOUR  # the references drawn

    views = await submit(client, key, type="ai-multi-shot", images=references[:1])
    await runner.drain()
    task = await fetch(client, key, views)
    assert task["status"] == "completed" and len(task["output"]["images"]) == 4
    assert thumbnailer.calls == 3  # one more decode for four views
    assert all(name.startswith(THREAD_PREFIX) for name in thumbnailer.threads)


async def test_references_past_a_polls_budget_are_decoded_by_the_next_polls(
    app: Any, client: httpx2.AsyncClient, keys: KeyFactory, db: Database
) -> None:
    key = await keys(credits=20)
    thumbnailer = CountingThumbnailer()
    runner, _ = counted_runner(app, thumbnailer, budget_s=0.0)  # one reference per poll
    references = [await own_file(app, large_png(800 + i, 600)) for i in range(3)]
    task_id = await submit(client, key, images=references, num_images=2)
    await runner.drain()
    assert (await fetch(client, key, task_id))["status"] == "completed"
    async with db.read() as s:
        task = await s.get(Task, task_id)
    assert thumbnailer.calls == 3 and task.polls == 2  # `pending` until the last was made


async def test_the_loop_keeps_serving_while_the_sandbox_decodes(
    app: Any, client: httpx2.AsyncClient, keys: KeyFactory
) -> None:
    key = await keys(credits=20)
    thumbnailer = CountingThumbnailer(held=True)
    runner, _ = counted_runner(app, thumbnailer)
    task_id = await submit(client, key, images=[await own_file(app, large_png())])
    draining = asyncio.create_task(runner.drain())
    try:
        await until(lambda: thumbnailer.active == 1, "a decode in progress")
        health = await client.get("/healthz")  # served by the loop mid-decode
        assert health.status_code == 200 and thumbnailer.active == 1
    finally:
        thumbnailer.release.set()
        await draining
    assert (await fetch(client, key, task_id))["status"] == "completed"
    assert thumbnailer.threads[0].startswith(THREAD_PREFIX)


async def test_sandbox_tasks_decode_at_most_pool_size_at_once(
    app: Any, client: httpx2.AsyncClient, keys: KeyFactory
) -> None:
    key = await keys(credits=100)
    thumbnailer = CountingThumbnailer(held=True)
    runner, _ = counted_runner(app, thumbnailer, threads=2)
    reference = await own_file(app, large_png())
    tasks = [await submit(client, key, prompt=f"fox {i}", images=[reference]) for i in range(4)]
    draining = asyncio.create_task(runner.drain())
    try:
        await until(lambda: thumbnailer.active == 2, "two decodes at once")
        for _ in range(20):  # the other two tasks are due as well: give them every chance
            await asyncio.sleep(0.01)
        assert thumbnailer.active == 2
    finally:
        thumbnailer.release.set()
        await draining
    assert [(await fetch(client, key, t))["status"] for t in tasks] == ["completed"] * 4
    assert thumbnailer.calls == 4 and thumbnailer.most_active == 2


async def test_a_busy_pool_makes_the_step_come_back_later_without_an_error(
    app: Any,
    client: httpx2.AsyncClient,
    keys: KeyFactory,
    db: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = await keys(credits=20)
    thumbnailer = CountingThumbnailer()
    runner, pool = counted_runner(app, thumbnailer, threads=1, wait_s=0.05)
    task_id = await submit(client, key, images=[await own_file(app, large_png(800, 600))])
    busy = "all 1 render slots busy"
    async with pool.slot():  # every slot taken, by someone else's render
        for _ in range(4):  # prepare and submit, then a poll that finds no free slot
            async with db.write() as s:  # due now: skip the poll delay
                await s.execute(update(Task).where(Task.id == task_id).values(next_run_at=utcnow()))
            await runner._claim_and_start()
            while runner._running:
                await next(iter(runner._running))
            if busy in caplog.text:
                break
        async with db.read() as s:
            task = await s.get(Task, task_id)
    assert busy in caplog.text and thumbnailer.calls == 0
    assert (task.status, task.step, task.step_errors) == ("in_progress", "poll", 0)
    await runner.drain()
    assert (await fetch(client, key, task_id))["status"] == "completed"
    assert thumbnailer.calls == 1
