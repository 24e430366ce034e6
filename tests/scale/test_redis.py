"""Redis, optional: per-key rate limits shared by every replica, wake-up hints for workers,
and everything still working (per process, at the poll interval) while Redis is away."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx2
import pytest

from mediagate.app import build_components, build_runner, create_app
from mediagate.catalog.loader import load_catalog
from mediagate.core.db import Database
from mediagate.core.migrate import upgrade
from mediagate.core.settings import Settings
from mediagate.runner.runner import Runner
from tests.e2e.procs import free_port
from tests.factories import KeyFactory, MadeKey, generation
from tests.services import RedisServer, redis_server


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as server:
        yield server


@asynccontextmanager
async def replicas(settings: Settings, count: int) -> AsyncIterator[list[httpx2.AsyncClient]]:
    """`count` app replicas on one database, as separate `serve` processes would be."""
    async with AsyncExitStack() as stack:
        clients = []
        for i in range(count):
            app = create_app(settings)
            await stack.enter_async_context(app.router.lifespan_context(app))
            clients.append(
                await stack.enter_async_context(
                    httpx2.AsyncClient(
                        transport=httpx2.ASGITransport(app=app), base_url=f"http://replica{i}.test"
                    )
                )
            )
        yield clients


async def migrated(settings: Settings) -> Settings:
    await asyncio.to_thread(upgrade, settings)
    return settings


async def make_key(settings: Settings) -> MadeKey:
    db = Database(settings.db_url)
    try:
        return await KeyFactory(db, settings)(credits=600)
    finally:
        await db.dispose()


@pytest.fixture
def limited(make_settings: Callable[..., Settings]) -> Callable[..., Awaitable[Settings]]:
    """Settings with a strict limit: a burst of 4, then one request per 100 s."""

    async def make(**overrides: object) -> Settings:
        return await migrated(make_settings(rate_limit_per_s=0.01, rate_limit_burst=4, **overrides))

    return make


async def test_rate_limit_is_shared_by_every_replica(
    limited: Callable[..., Awaitable[Settings]], redis: RedisServer
) -> None:
    settings = await limited(redis_url=redis.url)
    key = await make_key(settings)
    async with replicas(settings, 2) as (a, b):
        answers = [
            await client.get("/api/v1/account", headers=key.headers) for client in (a, b) * 4
        ]
    assert [r.status_code for r in answers] == [200] * 4 + [429] * 4
    refused = answers[4]
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert float(refused.headers["Retry-After"]) > 0
    assert redis.client().exists(f"mediagate:ratelimit:{key.id}")


async def test_without_redis_each_replica_limits_alone_and_nothing_waits_on_it(
    limited: Callable[..., Awaitable[Settings]],
) -> None:
    settings = await limited(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_retry_s=60)
    key = await make_key(settings)
    async with replicas(settings, 2) as (a, b):
        answers = [
            await client.get("/api/v1/account", headers=key.headers) for client in (a, b) * 5
        ]
        submitted = await a.post(
            "/api/v1/images/generations", json=generation(), headers=key.headers
        )
        links = [c._transport.app.state.components.redis for c in (a, b)]  # type: ignore[attr-defined]
    # Each replica has its own bucket of 4 now: 8 pass, the fifth on each is refused.
    assert [r.status_code for r in answers] == [200] * 8 + [429] * 2
    assert submitted.status_code == 429  # still limited, still answered
    # One failed attempt per replica, then no request waits on a dead Redis for 60 s.
    assert [link.failures for link in links] == [1, 1]


async def start_worker(settings: Settings) -> tuple[Runner, asyncio.Task[None], list[object]]:
    """A runner with its own connections, as a separate `mediagate worker` would have."""
    db = Database(settings.db_url)
    components = build_components(db, settings)
    runner = build_runner(db, settings, load_catalog(settings.catalog_paths), components)
    return runner, asyncio.create_task(runner.run()), [components, db]


async def finished(client: httpx2.AsyncClient, key: MadeKey, task_id: str) -> dict[str, object]:
    async with asyncio.timeout(30):
        while True:
            data = (await client.get(f"/api/v1/tasks/{task_id}", headers=key.headers)).json()
            if data["data"]["status"] != "IN_PROGRESS":
                return dict(data["data"])
            await asyncio.sleep(0.05)


async def test_redis_going_away_and_coming_back(
    make_settings: Callable[..., Settings], redis: RedisServer
) -> None:
    settings = make_settings(
        redis_url=redis.url,
        redis_retry_s=0.2,
        rate_limit_per_s=100,
        rate_limit_burst=100,
        runner_poll_interval_s=1.0,
    )
    await migrated(settings)
    key = await make_key(settings)
    runner, running, resources = await start_worker(settings)
    try:
        async with replicas(settings, 1) as (api,):
            await asyncio.wait_for(_subscribed(runner), 10)
            listener = runner.redis_listener
            assert listener is not None

            async def submit() -> str:
                answer = await api.post(
                    "/api/v1/images/generations", json=generation(), headers=key.headers
                )
                assert answer.status_code == 200, answer.text
                return str(answer.json()["data"]["task_id"])

            # With Redis: the submit's hint reaches the separate worker.
            first = await submit()
            assert (await finished(api, key, first))["status"] == "completed"
            assert listener.received >= 1
            assert redis.client().exists(f"mediagate:ratelimit:{key.id}")

            # Redis goes away: submits are still accepted and the worker still finishes
            # the task, found by its poll instead of a hint.
            redis.stop()
            received = listener.received
            second = await submit()
            assert (await finished(api, key, second))["status"] == "completed"
            assert listener.received == received
            api_link = api._transport.app.state.components.redis  # type: ignore[attr-defined]
            assert api_link.failures >= 1

            # Redis comes back (empty): limits are shared again, hints flow again.
            redis.start()
            await asyncio.wait_for(_subscribed(runner), 10)
            await asyncio.sleep(settings.redis_retry_s)
            third = await submit()
            assert (await finished(api, key, third))["status"] == "completed"
            assert listener.received > received
            assert redis.client().exists(f"mediagate:ratelimit:{key.id}")
    finally:
        await runner.stop()
        await running
        for resource in resources:
            await resource.aclose() if hasattr(resource, "aclose") else await resource.dispose()  # type: ignore[attr-defined]


async def _subscribed(runner: Runner) -> None:
    while runner.redis_listener is None or not runner.redis_listener.subscribed.is_set():
        await asyncio.sleep(0.02)
