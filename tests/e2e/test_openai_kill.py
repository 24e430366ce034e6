"""SIGKILL the worker while OpenAI (synchronous: the images come in the answer) is still
working on the call: OpenAI is never called a second time for the task, and the task
ends failed as needs_reconciliation with its credits released (nothing charged), since
the answer was lost with the worker. The lease the dead worker held by heartbeat runs
out, and another worker takes the task over."""

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
from tests.providers.fake_openai import FakeOpenAI, openai_app
from tests.providers.fakes import serve

pytestmark = pytest.mark.e2e
KEY = "sk-e2e-openai-0123456789"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    state = FakeOpenAI(KEY, delay_s=20.0)  # still working when the worker is killed
    with serve(openai_app(state), state):
        yield state


def test_kill_during_a_synchronous_call(
    tmp_path: Path, fake: FakeOpenAI, database_url: str | None
) -> None:
    data = tmp_path / "data"
    env = environment(
        data,
        database_url,
        lease_s=3,  # the heartbeat renews it every second while the call runs
        reconcile_interval_s=0.5,
        runner_poll_interval_s=0.1,
        openai_api_key=KEY,
        openai_base_url=fake.base,
        fetch_allow_private_hosts=json.dumps(["127.0.0.1"]),
    )
    cli(env, "migrate")
    key = create_key(env, account="kill-openai", credits=100, test=False)
    auth = {"Authorization": f"Bearer {key}"}
    before = fake.calls["generations"]
    with api_only(env, tmp_path) as base:
        task_id = submit(
            base, key, {"model": "gpt-image-1.5", "prompt": "[fake:slow] a kill", "num_images": 2}
        )
        with process(env, "worker", log=tmp_path / "worker1.log") as first:
            wait_until(
                lambda: fake.calls["generations"] > before, timeout=30, what="the call to OpenAI"
            )
            lease = "SELECT lease_expires_at FROM tasks WHERE id = ?"
            leased = query(env, lease, task_id)
            wait_until(
                lambda: query(env, lease, task_id) != leased,
                timeout=30,
                what="the heartbeat to renew the lease",
            )
            first.send_signal(signal.SIGKILL)  # OpenAI has not answered yet
            first.wait()
        assert query(env, "SELECT step, upstream_id FROM tasks WHERE id = ?", task_id) == [
            ("submitting", None)
        ]
        with process(env, "worker", log=tmp_path / "worker2.log"):
            wait_until(
                lambda: query(
                    env, "SELECT 1 FROM tasks WHERE id = ? AND status != 'in_progress'", task_id
                ),
                timeout=60,
                what="the task to finish",
            )
        task = httpx2.get(f"{base}/api/v1/tasks/{task_id}", headers=auth).json()["data"]
    assert task["status"] == "failed", task
    assert task["error"]["type"] == "needs_reconciliation"
    assert fake.calls["generations"] - before == 1  # never called again
    assert query(env, "SELECT count(*) FROM tasks") == [(1,)]
    kinds = [
        k
        for (k,) in query(
            env, "SELECT kind FROM ledger_transfers WHERE task_id = ? ORDER BY id", task_id
        )
    ]
    assert kinds == ["hold", "release"]  # nothing charged
