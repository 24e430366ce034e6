"""The lease heartbeat: a step longer than the lease keeps it (one upstream call, no other
worker takes the task), and a step whose lease was taken is stopped without writing."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
from sqlalchemy import select, update

from mediagate.runner.runner import Runner
from mediagate.tasks.models import Task
from tests.factories import KeyFactory
from tests.providers.fake_openai import FakeOpenAI, openai_app
from tests.providers.fakes import serve
from tests.providers.test_providers import CHARGED, live_gateway
from tests.runner.test_runner import make_runner, transfers

KEY = "sk-heartbeat-0123456789"
LEASE_S = 1.5


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    state = FakeOpenAI(KEY, delay_s=4 * LEASE_S)  # a call far longer than the lease
    with serve(openai_app(state), state):
        yield state


@asynccontextmanager
async def gateway(make_settings: Any, fake: FakeOpenAI) -> AsyncIterator[Any]:
    async with live_gateway(
        make_settings,
        openai_api_key=KEY,
        openai_base_url=fake.base,
        lease_s=LEASE_S,
        reconcile_interval_s=0.1,  # an expired lease would be handed on at once
    ) as app:
        yield app


@asynccontextmanager
async def running(*runners: Runner) -> AsyncIterator[None]:
    jobs = [asyncio.create_task(r.run()) for r in runners]
    try:
        yield
    finally:
        for r in runners:
            await r.stop(grace_s=1)
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 30) -> None:
    async with asyncio.timeout(timeout_s):
        while not await check():
            await asyncio.sleep(0.05)


def counted(counter: Any) -> float:
    return float(counter._value.get())


async def submit(app: Any, keys: KeyFactory, prompt: str) -> str:
    key = await keys(mode="live", credits=100, account="beats")
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://gw"
    ) as client:
        created = await client.post(
            "/api/v1/images/generations",
            json={"model": "gpt-image-1.5", "prompt": prompt},
            headers=key.headers,
        )
    assert created.status_code == 200, created.text
    return str(created.json()["data"]["task_id"])


async def row(app: Any, task_id: str) -> Task:
    async with app.state.core.db.read() as s:
        return (await s.scalars(select(Task).where(Task.id == task_id))).one()


async def test_a_call_longer_than_the_lease_keeps_it_and_is_made_once(
    fake: FakeOpenAI, make_settings: Any, keys: KeyFactory
) -> None:
    before = fake.calls["generations"]
    async with gateway(make_settings, fake) as app:
        task_id = await submit(app, keys, "[fake:slow] a long one")
        first, second = make_runner(app, name="first"), make_runner(app, name="second")
        async with running(first, second):

            async def finished() -> bool:
                return (await row(app, task_id)).status != "in_progress"

            await until(finished, "the task to finish")
        task = await row(app, task_id)
        kinds = await transfers(app.state.core.db, task_id)
    assert task.status == "completed", task.error_message
    assert fake.calls["generations"] - before == 1  # never sent again by the other worker
    assert kinds == CHARGED
    assert counted(first.metrics.lease_lost) + counted(second.metrics.lease_lost) == 0
    # About four leases long, renewed every third of one: several beats, by one of them.
    beats = [counted(first.metrics.lease_heartbeats), counted(second.metrics.lease_heartbeats)]
    assert min(beats) == 0 and max(beats) >= 3


async def test_a_step_whose_lease_was_taken_stops_and_writes_nothing(
    fake: FakeOpenAI, make_settings: Any, keys: KeyFactory
) -> None:
    before = fake.calls["generations"]
    async with gateway(make_settings, fake) as app:
        task_id = await submit(app, keys, "[fake:slow] taken away")
        runner = make_runner(app, name="loser")
        async with running(runner):

            async def called() -> bool:
                return fake.calls["generations"] > before

            await until(called, "the call to reach OpenAI")
            async with app.state.core.db.write() as s:  # another worker takes it over
                await s.execute(
                    update(Task)
                    .where(Task.id == task_id)
                    .values(lease_owner="thief", attempt=Task.attempt + 1)
                )

            async def lost() -> bool:
                return counted(runner.metrics.lease_lost) == 1

            await until(lost, "the heartbeat to find the lease taken")
            # The call is abandoned (cancelled), nothing is written, no retry is made.
            task = await row(app, task_id)
    assert (task.lease_owner, task.step, task.upstream_id) == ("thief", "submitting", None)
    assert task.status == "in_progress"
    assert fake.calls["generations"] - before == 1
