"""The lease runner: steps, fencing, reconciliation, deadlines, error budget, replay."""

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx2
import pytest
from PIL import Image
from sqlalchemy import func, select, update

from mediagate.app import build_runner
from mediagate.core.clock import utcnow
from mediagate.core.db import Database
from mediagate.ledger import service as ledger
from mediagate.ledger.models import LedgerTransfer
from mediagate.providers.base import PollResult, ProviderRequest
from mediagate.providers.models import SandboxJob
from mediagate.providers.registry import ProviderRegistry
from mediagate.runner import repository
from mediagate.runner.runner import LeaseLost, Runner
from mediagate.runner.wakeups import TaskListener
from mediagate.tasks.models import Task
from tests.factories import KeyFactory, MadeKey, generation
from tests.servers import ImageServer


def make_runner(
    app: Any, *, name: str | None = None, providers: ProviderRegistry | None = None
) -> Runner:
    core, parts = app.state.core, app.state.components
    return Runner(
        core.db,
        core.settings,
        catalog=core.catalog,
        providers=providers or parts.providers,
        storage=parts.storage,
        references=parts.references,
        name=name,
    )


async def submit(client: httpx2.AsyncClient, key: MadeKey, **fields: Any) -> str:
    response = await client.post(
        "/api/v1/images/generations", json=generation(**fields), headers=key.headers
    )
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["task_id"])


async def fetch(client: httpx2.AsyncClient, key: MadeKey, task_id: str) -> dict[str, Any]:
    return dict((await client.get(f"/api/v1/tasks/{task_id}", headers=key.headers)).json()["data"])


async def transfers(db: Database, task_id: str) -> list[str]:
    async with db.read() as s:
        rows = await s.scalars(
            select(LedgerTransfer.kind)
            .where(LedgerTransfer.task_id == task_id)
            .order_by(LedgerTransfer.id)
        )
        return list(rows)


async def test_a_task_completes_and_is_charged_once(
    app: Any, client: httpx2.AsyncClient, keys: KeyFactory, db: Database
) -> None:
    key = await keys(credits=20)
    task_id = await submit(client, key, num_images=3, aspect_ratio="9:16", resolution="2k")
    await make_runner(app).drain()
    task = await fetch(client, key, task_id)
    assert task["status"] == "completed" and task["credits"] == 6 and task["error"] is None
    assert task["completed_at"] is not None
    assert len(task["output"]["images"]) == 3
    for image in task["output"]["images"]:
        assert image["url"].startswith("http://gateway.test/files/")
        png = await client.get(image["url"])
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        assert (image["width"], image["height"]) == (1536, 2736)
    assert await transfers(db, task_id) == ["hold", "capture"]
    async with db.read() as s:
        assert await ledger.balance(s, key.account_id, "test") == ledger.Balance(posted=14, held=0)


async def test_multi_shot_returns_views_of_one_subject(
    app: Any, client: httpx2.AsyncClient, keys: KeyFactory, images: ImageServer
) -> None:
    key = await keys(credits=20)
    subject = images.url("/img/600x800.jpg")
    task_id = await submit(client, key, type="ai-multi-shot", images=[subject])
    await make_runner(app).drain()
    task = await fetch(client, key, task_id)
    assert task["status"] == "completed" and task["credits"] == 16
    assert len(task["output"]["images"]) == 4


async def test_sandbox_output_is_deterministic(
    app: Any, client: httpx2.AsyncClient, keys: KeyFactory
) -> None:
    key = await keys(credits=20)
    first, second = (
        await submit(client, key, prompt="same"),
        await submit(client, key, prompt="same"),
    )
    await make_runner(app).drain()
    urls = [(await fetch(client, key, t))["output"]["images"][0]["url"] for t in (first, second)]
    assert urls[0] != urls[1]  # every task has its own files
    assert (await client.get(urls[0])).content == (await client.get(urls[1])).content


async def test_forced_failure_releases_the_hold(
    app: Any, client: httpx2.AsyncClient, keys: KeyFactory, db: Database
) -> None:
    key = await keys(credits=6)
    task_id = await submit(client, key, prompt="please [sandbox:fail]")
    await make_runner(app).drain()
    task = await fetch(client, key, task_id)
    assert (
        task["status"] == "failed"
        and task["credits"] == 0
        and task["output"] == {"images": [], "videos": []}
    )
    assert task["error"]["type"] == "generation_failed"
    assert "[sandbox:fail]" in task["error"]["message"]
    assert await transfers(db, task_id) == ["hold", "release"]
    async with db.read() as s:
        assert await ledger.balance(s, key.account_id, "test") == ledger.Balance(posted=6, held=0)


async def test_a_worker_that_lost_its_lease_writes_nothing(
    app: Any, client: httpx2.AsyncClient, keys: KeyFactory, db: Database
) -> None:
    key = await keys()
    task_id = await submit(client, key)
    slow, fast = make_runner(app, name="slow"), make_runner(app, name="fast")
    async with db.write() as s:
        [claimed] = await repository.claim_due(s, worker="slow", limit=10, lease_s=30, now=utcnow())
    assert claimed.attempt == 1
    # The lease expires (the worker stalled); the reconciler requeues; another worker claims.
    async with db.write() as s:
        await s.execute(
            update(Task)
            .where(Task.id == task_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    await fast.reconcile()
    await fast.drain()
    assert (await fetch(client, key, task_id))["status"] == "completed"
    # The stalled worker comes back and tries to finish its (old) step: fenced out.
    with pytest.raises(LeaseLost):
        await slow._apply(claimed, await slow._run_step(claimed))
    async with db.read() as s:
        task = await s.get(Task, task_id)
    assert task.status == "completed" and task.attempt > 1
    assert await transfers(db, task_id) == ["hold", "capture"]


async def test_claims_do_not_overlap(
    app: Any, client: httpx2.AsyncClient, keys: KeyFactory, db: Database
) -> None:
    key = await keys(credits=60)
    ids = {await submit(client, key) for _ in range(5)}
    async with db.write() as s:
        a = await repository.claim_due(s, worker="a", limit=3, lease_s=30, now=utcnow())
    async with db.write() as s:
        b = await repository.claim_due(s, worker="b", limit=10, lease_s=30, now=utcnow())
    assert len(a) == 3 and len(b) == 2
    assert {t.id for t in a} | {t.id for t in b} == ids and not {t.id for t in a} & {
        t.id for t in b
    }


async def test_a_task_past_its_deadline_fails_and_is_released(
    app: Any, client: httpx2.AsyncClient, keys: KeyFactory, db: Database
) -> None:
    key = await keys(credits=6)
    task_id = await submit(client, key)
    async with db.write() as s:
        await s.execute(
            update(Task)
            .where(Task.id == task_id)
            .values(
                step="poll",
                upstream_id="sbx_missing",
                provider="sandbox",
                next_run_at=utcnow() + timedelta(hours=1),
                deadline_at=utcnow() - timedelta(seconds=1),
            )
        )
    runner = make_runner(app)
    await runner.reconcile()  # makes it due now
    await runner.drain()
    task = await fetch(client, key, task_id)
    assert task["status"] == "failed" and task["error"]["type"] == "timeout"
    assert "nothing was charged" in task["error"]["message"]
    assert await transfers(db, task_id) == ["hold", "release"]


class ExplodingProvider:
    name = "sandbox"
    supports_lookup = True

    def __init__(self) -> None:
        self.calls = 0

    async def submit(self, request: ProviderRequest) -> str:
        self.calls += 1
        raise RuntimeError("upstream bug")

    async def lookup(self, request: ProviderRequest) -> str | None:
        return None

    async def poll(self, upstream_id: str, request: ProviderRequest) -> PollResult:
        raise AssertionError("not reached")

    async def save_result(
        self, output: str, request: ProviderRequest, dest: Path, *, max_bytes: int
    ) -> None:
        raise AssertionError("not reached")


async def test_unexpected_errors_retry_then_fail_with_release(
    app: Any,
    client: httpx2.AsyncClient,
    keys: KeyFactory,
    db: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = await keys(credits=6)
    task_id = await submit(client, key)
    exploding = ExplodingProvider()
    runner = make_runner(app, providers=ProviderRegistry(exploding, live={}))
    for _ in range(10):
        async with db.write() as s:  # skip the backoff waits
            await s.execute(update(Task).where(Task.id == task_id).values(next_run_at=utcnow()))
        await runner._claim_and_start()
        while runner._running:
            await asyncio.wait(runner._running)  # yields, so done callbacks run
    task = await fetch(client, key, task_id)
    assert exploding.calls == app.state.core.settings.step_max_errors
    assert task["status"] == "failed" and task["error"]["type"] == "api_error"
    assert "upstream bug" not in task["error"]["message"]  # internals stay in the log
    assert any("upstream bug" in str(r.exc_info) for r in caplog.records if r.exc_info)
    assert await transfers(db, task_id) == ["hold", "release"]


async def test_replayed_submit_finds_the_upstream_task_instead_of_resubmitting(
    app: Any, client: httpx2.AsyncClient, keys: KeyFactory, db: Database
) -> None:
    key = await keys()
    task_id = await submit(client, key)
    sandbox = app.state.providers.sandbox
    # A worker persisted `submitting`, the sandbox accepted, then the worker died
    # before it could write the upstream id.
    async with db.write() as s:
        await s.execute(
            update(Task).where(Task.id == task_id).values(step="submitting", provider="sandbox")
        )
        task = await s.get(Task, task_id)
        request = ProviderRequest(task_id, task.model, task.type, task.params)
    upstream_id = await sandbox.submit(request)
    await make_runner(app).drain()
    async with db.read() as s:
        task = await s.get(Task, task_id)
        jobs = await s.scalar(
            select(func.count()).select_from(SandboxJob).where(SandboxJob.reference == task_id)
        )
    assert task.status == "completed" and task.upstream_id == upstream_id
    assert jobs == 1
    assert await transfers(db, task_id) == ["hold", "capture"]


async def test_stored_files_match_the_reported_sizes(
    app: Any, client: httpx2.AsyncClient, keys: KeyFactory, settings: Any
) -> None:
    key = await keys()
    task_id = await submit(client, key, aspect_ratio="21:9")
    await make_runner(app).drain()
    [image] = (await fetch(client, key, task_id))["output"]["images"]
    path = settings.files_dir / image["url"].rsplit("/", 1)[1]
    with Image.open(path) as stored:
        assert stored.size == (image["width"], image["height"])


async def test_only_one_reconciler_runs_at_a_time(
    app: Any, client: httpx2.AsyncClient, keys: KeyFactory, db: Database, settings: Any
) -> None:
    if settings.database_url is None:
        pytest.skip("SQLite serialises every write unit: the lock is PostgreSQL's")
    key = await keys()
    task_id = await submit(client, key)
    async with db.write() as s:
        await repository.claim_due(s, worker="gone", limit=1, lease_s=30, now=utcnow())
        await s.execute(
            update(Task)
            .where(Task.id == task_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    conn = await asyncpg.connect(settings.database_url.replace("+asyncpg", ""))
    try:
        async with conn.transaction():  # another worker is reconciling
            await conn.execute("SELECT pg_advisory_xact_lock($1)", repository.RECONCILER_LOCK)
            await make_runner(app).reconcile()
            async with db.read() as s:
                assert (await s.get(Task, task_id)).lease_owner == "gone"  # left alone
    finally:
        await conn.close()
    await make_runner(app).reconcile()
    async with db.read() as s:
        assert (await s.get(Task, task_id)).lease_owner is None  # requeued once it is free


async def test_a_new_task_wakes_listening_workers(
    app: Any, client: httpx2.AsyncClient, keys: KeyFactory, settings: Any
) -> None:
    if settings.database_url is None:
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite runs one embedded runner")
    runner = make_runner(app)
    listener = TaskListener(settings.database_url, runner.wake)
    await listener.start()
    try:
        key = await keys()
        await submit(client, key)
        async with asyncio.timeout(10):  # a liveness bound, not a speed claim
            while not listener.received:
                await asyncio.sleep(0.01)
        assert runner._wake.is_set()
        # A replay of the same Idempotency-Key creates nothing and wakes nobody.
        headers = {**key.headers, "Idempotency-Key": "once"}
        before = listener.received
        await client.post("/api/v1/images/generations", json=generation(), headers=headers)
        async with asyncio.timeout(10):  # the first use of the key is a new task: announced
            while listener.received == before:
                await asyncio.sleep(0.01)
        received = listener.received
        await client.post("/api/v1/images/generations", json=generation(), headers=headers)
        await asyncio.sleep(0.3)
        assert listener.received == received
    finally:
        await listener.stop()


async def test_steps_due_at_once_run_under_one_claim_results_ride_with_the_next_write(
    app: Any, client: httpx2.AsyncClient, keys: KeyFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """prepare → submit → (poll, after the sandbox's latency 0) → store → finalize: one claim
    carries a task through the steps due at once, and a chained step's result goes with the
    next (fenced) write: the `submitting` checkpoint before the provider is called, and the
    finish, which writes the results with the credit capture."""
    key = await keys(credits=10)
    core = app.state.core
    task_id = (
        await client.post("/api/v1/images/generations", json=generation(), headers=key.headers)
    ).json()["data"]["task_id"]
    runner = build_runner(core.db, core.settings, core.catalog, app.state.components)
    written: list[dict[str, Any]] = []
    write_back = repository.write_back

    async def recording(session: Any, task: Task, **kwargs: Any) -> bool:
        done = await write_back(session, task, **kwargs)
        if done:
            written.append(kwargs["values"])
        return done

    monkeypatch.setattr(repository, "write_back", recording)
    await runner.drain()
    async with core.db.read() as session:
        task = await session.get_one(Task, task_id)
    assert task.status == "completed"
    claims = runner.metrics.claims._value.get()  # type: ignore[attr-defined]
    assert claims < 5  # fewer claims than steps
    assert task.attempt == claims
    assert [w["step"] for w in written] == ["submitting", "poll", "done"]
    submitting, _, done = written
    assert submitting["prepared"] == {"references": []}  # prepare's result, before the call
    assert done["outputs"] and done["images"] and done["status"] == "completed"
    assert task.prepared == {"references": []} and task.outputs and task.images
