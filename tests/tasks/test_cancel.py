"""POST /api/v1/tasks/{id}/cancel in each phase of a task, against a real app, a real
runner and the providers' fakes: what the answer says, what the ledger holds, and that a
worker holding the task is fenced off."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
from sqlalchemy import select

from mediagate.accounts.models import Account
from mediagate.app import build_runner
from mediagate.ledger.models import LedgerTransfer
from mediagate.tasks.models import Task
from mediagate.webhooks.models import CallbackDelivery
from tests.factories import KeyFactory, MadeKey, generation
from tests.providers.fakes import FakeState
from tests.providers.test_providers import fakes, live_gateway, provider_settings, ref

__all__ = ["fakes", "ref"]  # fixtures
SUBMIT = "/api/v1/images/generations"
HELD, CHARGED, RELEASED = ["hold"], ["hold", "capture"], ["hold", "release"]


@asynccontextmanager
async def gateway(
    make_settings: Callable[..., Any], *, mode: str = "test", **settings: Any
) -> AsyncIterator["Gateway"]:
    async with (
        live_gateway(make_settings, **settings) as app,
        httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://gw") as client,
    ):
        key = await KeyFactory(app.state.core.db, app.state.core.settings)(
            mode=mode,  # type: ignore[arg-type]
            credits=100,
            account=f"{mode}-acme",
        )
        gw = Gateway(app, client, key)
        try:
            yield gw
        finally:
            await gw.stop_runner()


class Gateway:
    def __init__(self, app: Any, client: httpx2.AsyncClient, key: MadeKey) -> None:
        self.app, self.client, self.key = app, client, key
        self.runner: Any = None
        self.running: asyncio.Task[None] | None = None

    async def submit(self, **fields: Any) -> str:
        created = await self.client.post(
            SUBMIT, json=generation(**fields), headers=self.key.headers
        )
        assert created.status_code == 200, created.text
        return str(created.json()["data"]["task_id"])

    async def cancel(self, task_id: str, key: MadeKey | None = None) -> httpx2.Response:
        headers = (key or self.key).headers
        return await self.client.post(f"/api/v1/tasks/{task_id}/cancel", headers=headers)

    async def get(self, task_id: str) -> dict[str, Any]:
        answer = await self.client.get(f"/api/v1/tasks/{task_id}", headers=self.key.headers)
        return dict(answer.json()["data"])

    def start_runner(self) -> None:
        core = self.app.state.core
        self.runner = build_runner(
            core.db,
            core.settings,
            core.catalog,
            self.app.state.components,
            waiters=self.app.state.waiters,
        )
        self.running = asyncio.create_task(self.runner.run())

    async def stop_runner(self) -> None:
        if self.runner is not None and self.running is not None:
            await self.runner.stop()
            await self.running
            self.runner = self.running = None

    async def row(self, task_id: str) -> Task:
        async with self.app.state.core.db.read() as s:
            task = await s.get_one(Task, task_id)
            s.expunge(task)
            return task

    async def until(
        self, task_id: str, check: Callable[[Task], bool], timeout_s: float = 20
    ) -> Task:
        async with asyncio.timeout(timeout_s):
            while not check(task := await self.row(task_id)):
                await asyncio.sleep(0.05)
        return task

    async def ledger(self, task_id: str) -> list[tuple[str, str | None]]:
        async with self.app.state.core.db.read() as s:
            rows = await s.execute(
                select(LedgerTransfer.kind, LedgerTransfer.reason)
                .where(LedgerTransfer.task_id == task_id)
                .order_by(LedgerTransfer.id)
            )
            return [(kind, reason) for kind, reason in rows]

    async def kinds(self, task_id: str) -> list[str]:
        return [kind for kind, _ in await self.ledger(task_id)]

    async def balance(self) -> dict[str, int]:
        answer = await self.client.get("/api/v1/account", headers=self.key.headers)
        return dict(answer.json()["data"]["credits"])

    async def in_progress_slots(self) -> int:
        async with self.app.state.core.db.read() as s:
            return int(
                await s.scalar(
                    select(Account.tasks_in_progress).where(Account.id == self.key.account_id)
                )
                or 0
            )


def assert_cancelled(answer: httpx2.Response) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    task = dict(answer.json()["data"])
    assert task["status"] == "cancelled"
    assert task["credits"] == 0
    assert task["error"]["type"] == "cancelled"
    assert task["completed_at"] is not None
    return task


def assert_conflict(answer: httpx2.Response, *words: str) -> str:
    assert answer.status_code == 409, answer.text
    error = answer.json()["error"]
    assert error["type"] == "conflict"
    for word in words:
        assert word in error["message"], error["message"]
    return str(error["message"])


async def test_a_queued_task_is_cancelled_at_once_and_its_hold_given_back(
    make_settings: Any,
) -> None:
    async with gateway(make_settings) as gw:
        before = await gw.balance()
        task_id = await gw.submit(callback_url="https://client.example/hook")
        assert (await gw.balance())["held"] == 6
        task = assert_cancelled(await gw.cancel(task_id))
        assert task["output"] == {"images": [], "videos": []}
        assert await gw.ledger(task_id) == [
            ("hold", None),
            ("release", "task cancelled by the client"),
        ]
        assert await gw.balance() == before
        assert await gw.in_progress_slots() == 0
        finished = gw.app.state.metrics.registry.get_sample_value(
            "mediagate_tasks_finished_total", {"status": "cancelled"}
        )
        assert finished == 1
        assert (await gw.get(task_id))["status"] == "cancelled"
        # Cancelling again answers the same and settles nothing twice.
        assert assert_cancelled(await gw.cancel(task_id)) == task
        assert await gw.kinds(task_id) == RELEASED
        listed = await gw.client.get(
            "/api/v1/tasks", params={"status": "cancelled"}, headers=gw.key.headers
        )
        assert [t["task_id"] for t in listed.json()["data"]["tasks"]] == [task_id]
        async with gw.app.state.core.db.read() as s:
            payloads = list(await s.scalars(select(CallbackDelivery.payload)))
        assert [p["status"] for p in payloads] == ["cancelled"]
        # A runner started now finds nothing to do.
        gw.start_runner()
        await asyncio.sleep(0.5)
        assert (await gw.row(task_id)).status == "cancelled"
        assert await gw.kinds(task_id) == RELEASED


async def test_two_cancels_at_once_release_the_hold_once(make_settings: Any) -> None:
    async with gateway(make_settings) as gw:
        task_id = await gw.submit()
        answers = await asyncio.gather(*(gw.cancel(task_id) for _ in range(5)))
        for answer in answers:
            assert_cancelled(answer)
        assert await gw.kinds(task_id) == RELEASED


async def test_a_cancel_while_a_worker_prepares_fences_the_worker_off(
    make_settings: Any, images: Any
) -> None:
    """The worker is fetching a reference (one byte a second) when the cancel comes: the
    task ends cancelled, and the worker, once its fetch gives up, changes nothing."""
    async with gateway(make_settings, fetch_deadline_s=3.0) as gw:
        task_id = await gw.submit(images=[images.url("/slow")])
        gw.start_runner()
        await gw.until(task_id, lambda t: t.lease_owner is not None and t.step == "prepare")
        assert_cancelled(await gw.cancel(task_id))
        registry = gw.runner.metrics.registry
        async with asyncio.timeout(20):  # until the worker's fetch gives up and it writes
            while not registry.get_sample_value("mediagate_runner_lease_lost_total"):
                await asyncio.sleep(0.1)
        task = await gw.row(task_id)
        assert task.status == "cancelled" and task.provider is None
        assert await gw.kinds(task_id) == RELEASED
        assert await gw.in_progress_slots() == 0


async def test_the_sandbox_stops_a_job_it_has_not_finished(make_settings: Any) -> None:
    async with gateway(make_settings, sandbox_latency_s=60.0) as gw:
        task_id = await gw.submit()
        gw.start_runner()
        await gw.until(task_id, lambda t: t.step == "poll")
        assert_cancelled(await gw.cancel(task_id))
        assert await gw.kinds(task_id) == RELEASED


async def test_a_finished_sandbox_job_cannot_be_cancelled(make_settings: Any) -> None:
    """At the poll step with the sandbox's result already made: too late (409), and the
    task completes and is charged as usual."""
    async with gateway(make_settings, sandbox_latency_s=0.0) as gw:
        task_id = await gw.submit()
        core = gw.app.state.core
        runner = build_runner(core.db, core.settings, core.catalog, gw.app.state.components)
        await runner.drain(timeout_s=30)
        assert_conflict(await gw.cancel(task_id), "already completed")
        assert await gw.kinds(task_id) == CHARGED


@pytest.mark.parametrize("ending", ["completed", "failed"])
async def test_a_finished_task_is_a_conflict(make_settings: Any, ending: str) -> None:
    prompt = "a red fox" if ending == "completed" else "a red fox [sandbox:fail]"
    async with gateway(make_settings, sandbox_latency_s=0.0) as gw:
        task_id = await gw.submit(prompt=prompt)
        gw.start_runner()
        await gw.until(task_id, lambda t: t.status == ending)
        assert_conflict(await gw.cancel(task_id), f"already {ending}")
        assert await gw.kinds(task_id) == (CHARGED if ending == "completed" else RELEASED)
        assert (await gw.get(task_id))["status"] == ending


async def test_another_accounts_task_is_not_found(make_settings: Any) -> None:
    async with gateway(make_settings) as gw:
        task_id = await gw.submit()
        other = await KeyFactory(gw.app.state.core.db, gw.app.state.core.settings)(
            account="someone-else"
        )
        answer = await gw.cancel(task_id, key=other)
        assert answer.status_code == 404 and answer.json()["error"]["type"] == "not_found"
        assert (await gw.cancel("task_nope")).status_code == 404
        assert (await gw.row(task_id)).status == "in_progress"


# --- after a provider accepted the task --------------------------------------------------


async def test_fal_removes_a_queued_request_and_the_task_is_cancelled(
    fakes: dict[str, FakeState], make_settings: Any, ref: str
) -> None:
    state = fakes["fal"]
    settings = provider_settings(fakes, ["fal"])
    async with gateway(make_settings, mode="live", **settings) as gw:
        task_id = await gw.submit(prompt="[fake:queued] cancel while queued", images=[ref])
        gw.start_runner()
        task = await gw.until(task_id, lambda t: t.step == "poll" and t.upstream_id is not None)
        assert_cancelled(await gw.cancel(task_id))
        assert task.upstream_id in state.cancelled
        assert state.tasks[str(task.upstream_id)]["cancelled"] is True
        assert await gw.kinds(task_id) == RELEASED
        polls = state.calls["poll"]
        await asyncio.sleep(1.5)  # a runner polling it would have asked again by now
        assert state.calls["poll"] <= polls + 1  # at most the poll already under way
        assert (await gw.row(task_id)).status == "cancelled"
        assert await gw.kinds(task_id) == RELEASED


async def test_fal_generating_is_not_stopped_and_runs_on(
    fakes: dict[str, FakeState], make_settings: Any, ref: str
) -> None:
    """IN_PROGRESS at fal: a cancel there is only a signal its app may ignore, so we do
    not send it; 409, and the task keeps its hold and its place."""
    state = fakes["fal"]
    async with gateway(make_settings, mode="live", **provider_settings(fakes, ["fal"])) as gw:
        task_id = await gw.submit(prompt="[fake:slow] cancel while generating", images=[ref])
        gw.start_runner()
        task = await gw.until(task_id, lambda t: t.step == "poll" and t.upstream_id is not None)
        cancels = state.calls["cancel"]
        assert_conflict(await gw.cancel(task_id), "fal has already started generating")
        assert state.calls["cancel"] == cancels  # fal was not asked
        assert task.upstream_id not in state.cancelled
        assert (await gw.row(task_id)).status == "in_progress"
        assert await gw.kinds(task_id) == HELD


async def test_a_provider_without_cancel_answers_409_and_the_task_is_charged_when_done(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory
) -> None:
    """Kling's API has no cancel: 409 saying so, and the task completes, charged once."""
    kling = fakes["kling"]
    kling.latency_s = (2.0, 2.0)
    settings = provider_settings(fakes, ["kling"])
    async with gateway(make_settings, mode="live", **settings) as gw:
        task_id = await gw.submit(prompt="[fake:latency] cannot be stopped")
        gw.start_runner()
        await gw.until(task_id, lambda t: t.step == "poll" and t.upstream_id is not None)
        assert_conflict(await gw.cancel(task_id), "kling", "cannot cancel it")
        await gw.until(task_id, lambda t: t.status != "in_progress")
        assert (await gw.get(task_id))["status"] == "completed"
        assert await gw.kinds(task_id) == CHARGED


async def test_a_task_being_handed_to_a_provider_is_a_conflict(
    fakes: dict[str, FakeState], make_settings: Any, ref: str
) -> None:
    """While the submit is on its way (the fake holds its answer), whether the provider
    has the task is unknown: 409, try again; the task goes on unharmed."""
    settings = provider_settings(fakes, ["wavespeed"])
    async with gateway(make_settings, mode="live", **settings) as gw:
        task_id = await gw.submit(prompt="[fake:hang] handed over", images=[ref])
        gw.start_runner()
        await gw.until(task_id, lambda t: t.step == "submitting")
        assert_conflict(await gw.cancel(task_id), "being handed to wavespeed")
        task = await gw.until(task_id, lambda t: t.status != "in_progress")
        assert task.status == "completed"
        assert await gw.kinds(task_id) == CHARGED
