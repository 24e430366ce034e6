import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from mediagate.app import build_runner, create_app
from mediagate.core.clock import utcnow
from mediagate.core.settings import Settings
from mediagate.tasks.models import Task
from tests.e2e.procs import free_port
from tests.factories import KeyFactory, generation
from tests.test_metrics_scale import statements


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_report_tasks_steps_holds_and_queue_lag(
    app: Any, client: httpx2.AsyncClient, keys: KeyFactory
) -> None:
    key = await keys(credits=30)
    for prompt in ("a", "b [sandbox:fail]"):
        await client.post(
            "/api/v1/images/generations", json=generation(prompt=prompt), headers=key.headers
        )
    core = app.state.core
    await build_runner(
        core.db, core.settings, core.catalog, app.state.components, app.state.metrics
    ).drain()
    waiting = (
        await client.post(
            "/api/v1/images/generations", json=generation(prompt="c"), headers=key.headers
        )
    ).json()["data"]["task_id"]
    async with core.db.write() as s:  # due for ten seconds, nobody has claimed it
        await s.execute(
            update(Task)
            .where(Task.id == waiting)
            .values(next_run_at=utcnow() - timedelta(seconds=10))
        )

    response = await client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    got = samples(response.text)
    assert got[("mediagate_tasks", (("state", "in_progress"),))] == 1  # the two finished
    assert got[("mediagate_credits_held", (("mode", "test"),))] == 6
    assert got[("mediagate_queue_lag_seconds", ())] >= 10
    assert got[("mediagate_claim_duration_seconds_count", ())] >= 1
    assert got[("mediagate_runner_claims_total", ())] >= 2  # steps due at once share a claim
    assert got[("mediagate_runner_lease_lost_total", ())] == 0
    for step in ("prepare", "submit", "poll", "store", "finalize"):
        assert got[("mediagate_step_duration_seconds_count", (("step", step),))] >= 1


async def test_a_running_runner_measures_its_event_loop_lag(app: Any) -> None:
    core = app.state.core
    runner = build_runner(core.db, core.settings, core.catalog, app.state.components)
    running = asyncio.create_task(runner.run())
    lag_count = ("mediagate_event_loop_lag_seconds_count", ())
    async with asyncio.timeout(10):
        while samples(runner.metrics.render().decode()).get(lag_count, 0) < 3:
            await asyncio.sleep(0.05)
    await runner.stop()
    await running
    assert samples(runner.metrics.render().decode())[lag_count] >= 3


@asynccontextmanager
async def app_with(settings: Settings, **changes: Any) -> AsyncIterator[Any]:
    application = create_app(settings.model_copy(update=changes))
    async with application.router.lifespan_context(application):
        yield application


def asgi(application: Any) -> httpx2.AsyncClient:
    transport = httpx2.ASGITransport(app=application)
    return httpx2.AsyncClient(transport=transport, base_url="http://gateway.test")


async def test_with_a_metrics_token_a_scrape_needs_it(settings: Settings) -> None:
    async with (
        app_with(settings, metrics_token="scrape-secret") as application,
        asgi(application) as client,
    ):
        bare = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        right = await client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
    for refused in (bare, wrong):
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "MEDIAGATE_METRICS_TOKEN" in refused.json()["error"]["message"]
        assert "mediagate_tasks" not in refused.text
    assert right.status_code == 200 and "mediagate_tasks" in right.text


async def test_with_a_metrics_port_metrics_leave_the_api_port(settings: Settings) -> None:
    port = free_port()
    async with app_with(settings, metrics_port=port, metrics_token="t0ken") as application:
        async with asgi(application) as client:
            on_api = await client.get("/metrics")
        async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}") as direct:
            refused = await direct.get("/metrics")
            served = await direct.get("/metrics", headers={"Authorization": "Bearer t0ken"})
    assert on_api.status_code == 404
    assert refused.status_code == 401
    assert served.status_code == 200 and "mediagate_queue_lag_seconds" in served.text
    with pytest.raises(httpx2.TransportError):  # stopped with the app
        httpx2.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


async def test_scrapes_share_a_reading_for_metrics_cache_s(settings: Settings) -> None:
    async with (
        # no low-balance check: its reads on the loop are not the scrape's
        app_with(settings, metrics_cache_s=0.5, low_balance_check_interval_s=0) as application,
        asgi(application) as client,
    ):
        with statements() as seen:
            for _ in range(5):
                assert (await client.get("/metrics")).status_code == 200
            once = reads(seen)
            await asyncio.sleep(0.6)
            assert (await client.get("/metrics")).status_code == 200
            twice = reads(seen)
    assert once == 3  # one reading: in progress, queue lag, credits held
    assert twice == 6
    selects = [t for sql, _, t in seen if sql.lstrip().upper().startswith("SELECT")]
    assert threading.get_ident() not in selects  # all read on the metrics thread


def reads(seen: list[tuple[str, Any, int]]) -> int:
    return sum(1 for sql, *_ in seen if sql.lstrip().upper().startswith("SELECT"))
