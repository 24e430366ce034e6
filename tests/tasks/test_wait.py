"""`Prefer: wait=N` on submit and on GET /api/v1/tasks/{id}, in one process: released by
the runner's finish hint (or the safety re-check), timed out as IN_PROGRESS."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx2
import pytest

from mediagate.app import build_components, build_runner, create_app
from mediagate.core.errors import InvalidRequest
from mediagate.core.migrate import upgrade
from mediagate.core.settings import Settings
from mediagate.tasks.prefer import MAX_WAIT_S, wait_preference
from mediagate.tasks.waiters import TaskWaiters
from tests.factories import KeyFactory, generation

SUBMIT = "/api/v1/images/generations"


@pytest.fixture
async def served(make_settings: Callable[..., Settings]) -> AsyncIterator[Any]:
    """An app whose tests choose the settings (the `client` fixture's are fixed)."""

    async def start(**overrides: Any) -> tuple[Any, httpx2.AsyncClient, KeyFactory]:
        settings = make_settings(**overrides)
        await asyncio.to_thread(upgrade, settings)  # it runs its own event loop
        app = create_app(settings)
        await stack.enter_async_context(app.router.lifespan_context(app))
        transport = httpx2.ASGITransport(app=app)
        client = await stack.enter_async_context(
            httpx2.AsyncClient(transport=transport, base_url="http://gateway.test")
        )
        return app, client, KeyFactory(app.state.core.db, settings)

    async with AsyncExitStack() as stack:
        yield start


async def until_waiting(waiters: TaskWaiters, count: int = 1) -> None:
    """Until `count` tasks have requests waiting on them (the request reached its wait)."""
    async with asyncio.timeout(10):
        while len(waiters) < count:
            await asyncio.sleep(0.01)


async def test_submit_with_wait_answers_the_completed_task(served: Any) -> None:
    _, client, keys = await served(embedded_runner=True, sandbox_latency_s=0.2)
    key = await keys()
    response = await client.post(
        SUBMIT, json=generation(), headers={**key.headers, "Prefer": "wait=30"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["preference-applied"] == "wait=30"
    data = response.json()["data"]
    assert data["status"] == "completed"
    assert data["task_id"].startswith("task_")
    assert len(data["output"]["images"]) == 1
    assert data["credits"] == 6


async def test_wait_on_get_is_released_by_the_runners_finish_hint(served: Any) -> None:
    # A re-check an hour away: only the in-process hint can release this request in time.
    app, client, keys = await served(wait_recheck_s=3600)
    key = await keys()
    task_id = (await client.post(SUBMIT, json=generation(), headers=key.headers)).json()["data"][
        "task_id"
    ]
    waiting = asyncio.create_task(
        client.get(f"/api/v1/tasks/{task_id}", headers={**key.headers, "Prefer": "wait=60"})
    )
    await until_waiting(app.state.waiters)
    assert not waiting.done()
    settings = app.state.core.settings
    components = build_components(app.state.core.db, settings)
    runner = build_runner(
        app.state.core.db,
        settings,
        app.state.core.catalog,
        components,
        waiters=app.state.waiters,
    )
    try:
        await runner.drain()
    finally:
        await components.aclose()
    response = await asyncio.wait_for(waiting, 30)
    assert response.headers["preference-applied"] == "wait=60"
    assert response.json()["data"]["status"] == "completed"
    assert app.state.waiters.rechecks == 0
    assert len(app.state.waiters) == 0


async def test_safety_recheck_releases_a_waiter_whose_hint_was_lost(served: Any) -> None:
    app, client, keys = await served(wait_recheck_s=0.2)
    key = await keys()
    task_id = (await client.post(SUBMIT, json=generation(), headers=key.headers)).json()["data"][
        "task_id"
    ]
    waiting = asyncio.create_task(
        client.get(f"/api/v1/tasks/{task_id}", headers={**key.headers, "Prefer": "wait=60"})
    )
    await until_waiting(app.state.waiters)
    settings = app.state.core.settings
    components = build_components(app.state.core.db, settings)
    runner = build_runner(app.state.core.db, settings, app.state.core.catalog, components)
    try:
        await runner.drain()  # no waiters given: this runner's finish hint is lost
    finally:
        await components.aclose()
    response = await asyncio.wait_for(waiting, 30)
    assert response.json()["data"]["status"] == "completed"
    assert app.state.waiters.rechecks >= 1


async def test_wait_times_out_with_the_task_in_progress(served: Any) -> None:
    _, client, keys = await served()
    key = await keys()
    response = await client.post(
        SUBMIT, json=generation(), headers={**key.headers, "Prefer": "wait=1"}
    )
    assert response.status_code == 200
    assert response.headers["preference-applied"] == "wait=1"
    data = response.json()["data"]
    assert data["status"] == "IN_PROGRESS"
    again = await client.get(
        f"/api/v1/tasks/{data['task_id']}", headers={**key.headers, "Prefer": "wait=1"}
    )
    assert again.json()["data"]["status"] == "IN_PROGRESS"
    assert again.headers["preference-applied"] == "wait=1"


async def test_without_a_wait_nothing_changes(served: Any) -> None:
    _, client, keys = await served()
    key = await keys()
    response = await client.post(
        SUBMIT, json=generation(), headers={**key.headers, "Prefer": "respond-async"}
    )
    assert response.json()["data"] == {
        "task_id": response.json()["data"]["task_id"],
        "status": "IN_PROGRESS",
    }
    assert "preference-applied" not in response.headers


async def test_a_malformed_wait_is_400_and_creates_nothing(served: Any) -> None:
    _, client, keys = await served()
    key = await keys()
    response = await client.post(
        SUBMIT, json=generation(), headers={**key.headers, "Prefer": "wait=soon"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "Prefer"
    listed = await client.get("/api/v1/tasks", headers=key.headers)
    assert listed.json()["data"]["tasks"] == []


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("respond-async", None),
        ("wait=5", 5),
        ("respond-async, wait=10", 10),
        ("WAIT = 7", 7),
        ('wait="3"', 3),
        ("wait=0", 0),
        ("wait=600", MAX_WAIT_S),
        ("handling=lenient; x=1, wait=2", 2),
    ],
)
def test_wait_preference_parsing(header: str | None, expected: int | None) -> None:
    assert wait_preference(header) == expected


@pytest.mark.parametrize("header", ["wait=", "wait=-1", "wait=1.5", "wait=abc"])
def test_wait_preference_refuses_what_is_not_seconds(header: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        wait_preference(header)
    assert caught.value.param == "Prefer"
