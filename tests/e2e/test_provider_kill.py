"""SIGKILL the worker after the provider accepted the task but before we wrote its id:
exactly one upstream task and one charge (Kling, found again by external_task_id), or a
task honestly marked for reconciliation and nothing charged (WaveSpeed: no lookup)."""

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
from tests.providers.fakes import FakeState, kling_app, serve, wavespeed_app

pytestmark = pytest.mark.e2e
KLING_SECRET = "kling-secret-key-0123456789abcdefghij"


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeState]]:
    states = {"wavespeed": FakeState("ws-key"), "kling": FakeState("kling-access")}
    with (
        serve(wavespeed_app(states["wavespeed"]), states["wavespeed"]),
        serve(kling_app(states["kling"], KLING_SECRET), states["kling"]),
    ):
        yield states


@pytest.mark.parametrize(
    ("provider", "status", "error_type", "ledger"),
    [
        ("kling", "completed", None, ["hold", "capture"]),
        ("wavespeed", "failed", "needs_reconciliation", ["hold", "release"]),
    ],
)
def test_kill_between_accept_and_write(
    tmp_path: Path,
    fakes: dict[str, FakeState],
    provider: str,
    status: str,
    error_type: str | None,
    ledger: list[str],
    database_url: str | None,
) -> None:
    fake = fakes[provider]
    port_of = int(fake.base.rsplit(":", 1)[1])
    credentials = (
        {
            "kling_access_key": fake.key,
            "kling_secret_key": KLING_SECRET,
            "kling_base_url": fake.base,
        }
        if provider == "kling"
        else {"wavespeed_api_key": fake.key, "wavespeed_base_url": fake.base}
    )
    data = tmp_path / "data"
    env = environment(
        data,
        database_url,
        lease_s=8,
        reconcile_interval_s=0.5,
        runner_poll_interval_s=0.1,
        fetch_allow_private_hosts=json.dumps(["127.0.0.1"]),
        fetch_ports=json.dumps([80, 443, port_of]),
        **credentials,
    )
    cli(env, "migrate")
    key = create_key(env, account=f"kill-{provider}", credits=30, test=False)
    auth = {"Authorization": f"Bearer {key}"}
    created_before = fake.calls["created"]
    with api_only(env, tmp_path) as base:
        body = {"model": "kling-image-o1", "prompt": f"[fake:hang] {provider}", "num_images": 2}
        task_id = submit(base, key, body)
        with process(env, "worker", log=tmp_path / "worker1.log") as first:
            wait_until(
                lambda: fake.calls["created"] > created_before,
                timeout=30,
                what="the provider to accept",
            )
            first.send_signal(signal.SIGKILL)  # it is still waiting for the answer
            first.wait()
        assert query(env, "SELECT step, upstream_id FROM tasks WHERE id = ?", task_id) == [
            ("submitting", None)
        ]
        # Another worker takes over once the dead one's lease has expired.
        with process(env, "worker", log=tmp_path / "worker2.log"):
            wait_until(
                lambda: query(
                    env, "SELECT 1 FROM tasks WHERE id = ? AND status != 'in_progress'", task_id
                ),
                timeout=60,
                what="the task to finish",
            )
        task = httpx2.get(f"{base}/api/v1/tasks/{task_id}", headers=auth).json()["data"]
    assert task["status"] == status, task
    assert (task["error"] or {}).get("type") == error_type
    assert fake.calls["created"] - created_before == 1  # exactly one upstream task
    kinds = [
        k
        for (k,) in query(
            env, "SELECT kind FROM ledger_transfers WHERE task_id = ? ORDER BY id", task_id
        )
    ]
    assert kinds == ledger  # exactly one charge, or none
