"""SIGKILL the worker after the provider accepted the task but before we wrote its id:
exactly one upstream task and one charge (Kling omni-image, found again by
external_task_id), or a task honestly marked for reconciliation and nothing charged
(WaveSpeed, and Kling multi-shot, whose query takes no external_task_id). What Kling
answers to a repeated external_task_id is not documented: the fake refuses it or answers
with the existing task, and the guarantees hold both ways."""

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@pytest.mark.parametrize("duplicates", ["refuse", "existing"])
@pytest.mark.parametrize(
    ("provider", "task_type", "status", "error_type", "ledger"),
    [
        ("kling", "image-to-image", "completed", None, ["hold", "capture"]),
        ("kling", "ai-multi-shot", "failed", "needs_reconciliation", ["hold", "release"]),
        ("wavespeed", "image-to-image", "failed", "needs_reconciliation", ["hold", "release"]),
    ],
)
def test_kill_between_accept_and_write(
    tmp_path: Path,
    fakes: dict[str, FakeState],
    images: Any,
    provider: str,
    task_type: str,
    status: str,
    error_type: str | None,
    ledger: list[str],
    duplicates: str,
    database_url: str | None,
) -> None:
    if provider == "wavespeed" and duplicates == "existing":
        pytest.skip("WaveSpeed takes no client reference: nothing to be duplicated")
    fake = fakes[provider]
    fake.duplicates = duplicates  # type: ignore[assignment]
    fake.always = {"[fake:hang]"} if task_type == "ai-multi-shot" else set()  # no prompt there
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
        fetch_ports=json.dumps([80, 443, port_of, images.server_address[1]]),
        **credentials,
    )
    cli(env, "migrate")
    key = create_key(env, account=f"kill-{provider}", credits=30, test=False)
    auth = {"Authorization": f"Bearer {key}"}
    created_before = fake.calls["created"]
    with api_only(env, tmp_path) as base:
        body: dict[str, Any] = {"model": "kling-image-o1", "prompt": f"[fake:hang] {provider}"}
        if task_type == "ai-multi-shot":
            body.update(type=task_type, images=[images.url("/img/600x800.png")])
        else:
            body["num_images"] = 2
        try:
            task_id = submit(base, key, body)
            task = _kill_then_finish(env, tmp_path, fake, task_id, base, auth)
        finally:
            fake.always, fake.duplicates = set(), "refuse"
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


def _kill_then_finish(
    env: dict[str, str],
    tmp_path: Path,
    fake: FakeState,
    task_id: str,
    base: str,
    auth: dict[str, str],
) -> dict[str, Any]:
    """Kill the first worker while the provider holds the submit answer, let another
    finish the task; the task as the API shows it."""
    created_before = fake.calls["created"]
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
    return dict(httpx2.get(f"{base}/api/v1/tasks/{task_id}", headers=auth).json()["data"])
