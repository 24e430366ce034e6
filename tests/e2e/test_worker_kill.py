"""SIGKILL a `mediagate worker` in the middle of a step; another finishes the task exactly once."""

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.e2e.procs import (
    api_only,
    cli,
    create_key,
    environment,
    process,
    query,
    submit,
    wait_until,
)
from tests.providers.fakes import FakeState, kling_app, serve

pytestmark = pytest.mark.e2e
KLING_SECRET = "kling-secret-key-0123456789abcdefghij"


@pytest.mark.parametrize("kill_during", ["submitting", "poll", "store"])
def test_killed_worker_mid_step_then_another_finishes_once(
    tmp_path: Path, kill_during: str, database_url: str | None
) -> None:
    data = tmp_path / "data"
    # Every sandbox call takes 1.5 s: long enough to be killed inside it.
    env = environment(
        data,
        database_url,
        sandbox_call_delay_s=1.5,
        sandbox_latency_s=0,
        lease_s=5,
        reconcile_interval_s=0.5,
        runner_poll_interval_s=0.1,
    )
    cli(env, "migrate")
    key = create_key(env, account="kill", credits=30)
    with api_only(env, tmp_path) as base:
        task_id = submit(
            base, key, {"model": "kling-image-o1", "prompt": "survive", "num_images": 2}
        )

        with process(env, "worker", log=tmp_path / "worker1.log") as first:
            wait_until(
                lambda: query(
                    env,
                    "SELECT 1 FROM tasks WHERE id = ? AND step = ? AND lease_owner IS NOT NULL",
                    task_id,
                    kill_during,
                ),
                timeout=30,
                what=f"the worker to be inside step {kill_during}",
            )
            first.send_signal(signal.SIGKILL)
            first.wait()
        [(attempt_at_kill,)] = query(env, "SELECT attempt FROM tasks WHERE id = ?", task_id)

        with process(env, "worker", log=tmp_path / "worker2.log"):
            wait_until(
                lambda: query(
                    env, "SELECT 1 FROM tasks WHERE id = ? AND status != 'in_progress'", task_id
                ),
                timeout=60,
                what="the second worker to finish the task",
            )
        task = httpx2.get(
            f"{base}/api/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {key}"}
        ).json()["data"]
        account = httpx2.get(
            f"{base}/api/v1/account", headers={"Authorization": f"Bearer {key}"}
        ).json()["data"]

    assert task["status"] == "completed", task
    assert len(task["output"]["images"]) == 2
    kinds = [
        k
        for (k,) in query(
            env, "SELECT kind FROM ledger_transfers WHERE task_id = ? ORDER BY id", task_id
        )
    ]
    assert kinds == ["hold", "capture"]  # exactly one charge
    assert query(env, "SELECT count(*) FROM sandbox_jobs WHERE reference = ?", task_id) == [
        (1,)
    ]  # one upstream task
    [(attempt,)] = query(env, "SELECT attempt FROM tasks WHERE id = ?", task_id)
    assert attempt > attempt_at_kill  # the second worker re-claimed it under a new fence
    assert account["credits"] == {"available": 24, "held": 0, "posted": 24}
    assert "SIGKILL" not in (tmp_path / "worker2.log").read_text()


@pytest.fixture(scope="module")
def kling() -> Iterator[FakeState]:
    state = FakeState("kling-access")
    with serve(kling_app(state, KLING_SECRET), state):
        yield state


@pytest.mark.parametrize("duplicates", ["refuse", "existing"])
@pytest.mark.parametrize("kill_during", ["submitting", "poll"])
def test_killed_worker_mid_kling_step_then_another_finishes_once(
    tmp_path: Path, kling: FakeState, kill_during: str, duplicates: str, database_url: str | None
) -> None:
    """The same through the Kling fake, with its undocumented answer to a repeated
    external_task_id set both ways: one upstream task, one charge."""
    kling.duplicates = duplicates  # type: ignore[assignment]
    kling.call_delay_s = 1.5 if kill_during == "poll" else 0.0  # long enough to be killed in
    port = int(kling.base.rsplit(":", 1)[1])
    env = environment(
        tmp_path / "data",
        database_url,
        lease_s=5,
        reconcile_interval_s=0.5,
        runner_poll_interval_s=0.1,
        kling_access_key=kling.key,
        kling_secret_key=KLING_SECRET,
        kling_base_url=kling.base,
        fetch_allow_private_hosts=json.dumps(["127.0.0.1"]),
        fetch_ports=json.dumps([80, 443, port]),
    )
    cli(env, "migrate")
    key = create_key(env, account="kill-kling", credits=30, test=False)
    marker = "[fake:hang] " if kill_during == "submitting" else ""
    try:
        with api_only(env, tmp_path) as base:
            task_id = submit(
                base, key, {"model": "kling-image-o1", "prompt": f"{marker}kill {kill_during}"}
            )
            with process(env, "worker", log=tmp_path / "worker1.log") as first:
                wait_until(
                    lambda: query(
                        env,
                        "SELECT 1 FROM tasks WHERE id = ? AND step = ? AND lease_owner IS NOT NULL",
                        task_id,
                        kill_during,
                    ),
                    timeout=30,
                    what=f"the worker to be inside step {kill_during}",
                )
                if kill_during == "submitting":
                    wait_until(
                        lambda: task_id in kling.by_reference, timeout=30, what="Kling to accept"
                    )
                first.send_signal(signal.SIGKILL)
                first.wait()
            with process(env, "worker", log=tmp_path / "worker2.log"):
                wait_until(
                    lambda: query(
                        env, "SELECT 1 FROM tasks WHERE id = ? AND status != 'in_progress'", task_id
                    ),
                    timeout=60,
                    what="the second worker to finish the task",
                )
            task = httpx2.get(
                f"{base}/api/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {key}"}
            ).json()["data"]
    finally:
        kling.duplicates, kling.call_delay_s = "refuse", 0.0
    assert task["status"] == "completed", task
    kinds = [
        k
        for (k,) in query(
            env, "SELECT kind FROM ledger_transfers WHERE task_id = ? ORDER BY id", task_id
        )
    ]
    assert kinds == ["hold", "capture"]  # exactly one charge
    assert [t["reference"] for t in kling.tasks.values()].count(task_id) == 1  # one upstream
