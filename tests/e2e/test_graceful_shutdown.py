"""SIGTERM: a worker stops claiming, finishes what it can within its grace period, and
hands back the leases of what it could not finish."""

import signal
from pathlib import Path

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

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(("grace", "finished"), [("0.2", False), ("10", True)])
def test_sigterm(tmp_path: Path, database_url: str | None, grace: str, finished: bool) -> None:
    env = environment(
        tmp_path / "data",
        database_url,
        sandbox_call_delay_s=2,
        sandbox_latency_s=0,
        lease_s=60,
        reconcile_interval_s=0.5,
        runner_poll_interval_s=0.1,
    )
    cli(env, "migrate")
    key = create_key(env, account="term", credits=6)
    with api_only(env, tmp_path) as base:
        task_id = submit(base, key, {"model": "kling-image-o1", "prompt": "term"})
        with process(env, "worker", "--grace", grace, log=tmp_path / "worker1.log") as worker:
            wait_until(
                lambda: query(
                    env,
                    "SELECT 1 FROM tasks WHERE id = ? AND step = 'submitting'"
                    " AND lease_owner IS NOT NULL",
                    task_id,
                ),
                timeout=30,
                what="the worker to be inside the submit step",
            )
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(20) == 0
        [(step, owner)] = query(env, "SELECT step, lease_owner FROM tasks WHERE id = ?", task_id)
        assert owner is None  # nothing left leased to a process that is gone
        assert (step == "poll") is finished  # with enough grace, the step completed
        with process(env, "worker", log=tmp_path / "worker2.log"):
            wait_until(
                lambda: query(
                    env, "SELECT 1 FROM tasks WHERE id = ? AND status = 'completed'", task_id
                ),
                timeout=30,
                what="completion",
            )
    assert query(env, "SELECT count(*) FROM sandbox_jobs WHERE reference = ?", task_id) == [(1,)]
    kinds = [
        k
        for (k,) in query(
            env, "SELECT kind FROM ledger_transfers WHERE task_id = ? ORDER BY id", task_id
        )
    ]
    assert kinds == ["hold", "capture"]
