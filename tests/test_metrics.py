import asyncio
from datetime import timedelta
from typing import Any

import httpx2
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from mediagate.app import build_runner
from mediagate.core.clock import utcnow
from mediagate.tasks.models import Task
from tests.factories import KeyFactory, generation


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
