"""SIGKILL a `mediagate worker` running a video task on fal (seedance-1-pro, a live key):
inside fal's status call while the job is IN_PROGRESS, and in the middle of streaming the
MP4 down. Another worker takes the task over: still one task and one fal job (the job is
polled again, never submitted again), exactly one charge when it succeeds and none when
it fails, and no partial file in files/ or scratch/ (the dead worker's scratch is swept
when the next one starts)."""

import asyncio
import json
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.e2e.procs import (
    api_only,
    cli,
    create_key,
    environment,
    process,
    query,
    wait_until,
)
from tests.providers.fakes import FakeState, fal_app, mp4, serve

pytestmark = pytest.mark.e2e
VIDEOS = "/api/v1/videos/generations"
BODY = {"model": "seedance-1-pro", "resolution": "480p", "duration": 2}
CHARGE = 4  # 2 credits a second at 480p


@dataclass
class Holds:
    """Switches on the fal fake that keep a worker inside one call, so it can be killed
    there: every status request waits while `status` is set; every video download sends
    half the file, then waits while `download` is set (and ends short)."""

    status: bool = False
    download: bool = False
    held: Counter[str] = field(default_factory=Counter)


class Holding:
    """ASGI middleware on the fal fake applying `Holds`."""

    def __init__(self, app: ASGIApp, holds: Holds) -> None:
        self.app = app
        self.holds = holds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path.endswith("/status") and self.holds.status:
            self.holds.held["status"] += 1
            while self.holds.status:
                await asyncio.sleep(0.05)
        elif path.startswith("/videos/") and self.holds.download:
            await self._half_then_wait(send)
            return
        await self.app(scope, receive, send)

    async def _half_then_wait(self, send: Send) -> None:
        body = mp4()
        headers = [(b"content-type", b"video/mp4"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
        )
        self.holds.held["download"] += 1
        while self.holds.download:
            await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def fal() -> Iterator[tuple[FakeState, Holds]]:
    state, holds = FakeState("fal-key"), Holds()
    app = fal_app(state)
    app.add_middleware(Holding, holds=holds)
    with serve(app, state):
        yield state, holds


def gateway(data: Path, database_url: str | None, fal: FakeState, **extra: Any) -> dict[str, str]:
    env = environment(
        data,
        database_url,
        lease_s=5,
        reconcile_interval_s=0.5,
        runner_poll_interval_s=0.1,
        fal_key=fal.key,
        fal_base_url=fal.base,
        fetch_allow_private_hosts=json.dumps(["127.0.0.1"]),
        fetch_ports=json.dumps([80, 443, int(fal.base.rsplit(":", 1)[1])]),
        **extra,
    )
    cli(env, "migrate")
    return env


def submit_video(base: str, key: str, prompt: str) -> str:
    response = httpx2.post(
        f"{base}{VIDEOS}",
        json={**BODY, "prompt": prompt},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["task_id"])


def finish_with_another_worker(env: dict[str, str], tmp_path: Path, task_id: str) -> None:
    with process(env, "worker", log=tmp_path / "worker2.log"):
        wait_until(
            lambda: query(
                env, "SELECT 1 FROM tasks WHERE id = ? AND status != 'in_progress'", task_id
            ),
            timeout=60,
            what="the second worker to finish the task",
        )


def ledger_of(env: dict[str, str], task_id: str) -> list[tuple[str, int]]:
    rows = query(
        env, "SELECT kind, amount FROM ledger_transfers WHERE task_id = ? ORDER BY id", task_id
    )
    return [(str(kind), int(amount)) for kind, amount in rows]


def leftovers(data: Path) -> dict[str, list[str]]:
    """What is in files/ and scratch/ (names; folders end with '/')."""
    return {
        folder: sorted(p.name + ("/" if p.is_dir() else "") for p in (data / folder).iterdir())
        for folder in ("files", "scratch")
        if (data / folder).is_dir()
    }


@pytest.mark.parametrize(
    ("fal_ends", "status", "ledger"),
    [
        ("completed", "completed", [("hold", CHARGE), ("capture", CHARGE)]),
        ("policy", "failed", [("hold", CHARGE), ("release", CHARGE)]),
    ],
)
def test_kill_inside_the_poll_of_an_in_progress_fal_job(
    tmp_path: Path,
    fal: tuple[FakeState, Holds],
    database_url: str | None,
    fal_ends: str,
    status: str,
    ledger: list[tuple[str, int]],
) -> None:
    fake, holds = fal
    env = gateway(tmp_path / "data", database_url, fake)
    key = create_key(env, account=f"kill-video-{fal_ends}", credits=20, test=False)
    prompt = f"[fake:slow] a fox runs, killed while fal works ({fal_ends})"
    created, submits = fake.calls["created"], fake.calls["submit"]
    row = "SELECT step, upstream_id, polls, lease_owner, attempt FROM tasks WHERE id = ?"
    try:
        with api_only(env, tmp_path) as base:
            task_id = submit_video(base, key, prompt)
            with process(env, "worker", log=tmp_path / "worker1.log") as first:
                # fal answered IN_PROGRESS at least once, and the task waits at its poll step.
                wait_until(
                    lambda: query(env, f"{row} AND step = 'poll' AND polls >= 1", task_id),
                    timeout=30,
                    what="the task to be polled while fal works",
                )
                held = holds.held["status"]
                holds.status = True  # the next status call does not come back
                wait_until(lambda: holds.held["status"] > held, timeout=30, what="a held poll")
                [(step, upstream_id, _, owner, attempt)] = query(env, row, task_id)
                assert (step, owner is not None) == ("poll", True)  # leased, inside the call
                first.send_signal(signal.SIGKILL)
                first.wait()
            assert fake.calls["created"] - created == 1
            job = fake.tasks[upstream_id]
            job["prompt"] = job["prompt"].replace(
                "[fake:slow]", "" if fal_ends == "completed" else "[fake:policy]"
            )  # fal finishes the job meanwhile, or fails it for the content
            holds.status = False
            finish_with_another_worker(env, tmp_path, task_id)
            task = httpx2.get(
                f"{base}/api/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {key}"}
            ).json()["data"]
            account = httpx2.get(
                f"{base}/api/v1/account", headers={"Authorization": f"Bearer {key}"}
            ).json()["data"]
            served = [
                httpx2.get(v["url"]).content for v in (task["output"] or {}).get("videos", [])
            ]
    finally:
        holds.status = False
    assert task["status"] == status, task
    # One fal job, submitted once, polled again by the second worker under a new fence.
    assert fake.calls["created"] - created == 1 and fake.calls["submit"] - submits == 1
    assert [b["prompt"] for b in fake.bodies].count(prompt) == 1
    assert query(env, "SELECT count(*) FROM tasks") == [(1,)]
    [(upstream_after, attempt_after)] = query(
        env, "SELECT upstream_id, attempt FROM tasks WHERE id = ?", task_id
    )
    assert upstream_after == upstream_id and attempt_after > attempt
    assert ledger_of(env, task_id) == ledger  # exactly one charge, or none
    spent = CHARGE if status == "completed" else 0
    assert account["credits"] == {"available": 20 - spent, "held": 0, "posted": 20 - spent}
    if status == "completed":
        [video] = task["output"]["videos"]
        assert video["duration_s"] == pytest.approx(2, abs=0.1)
        assert served == [mp4()]
    else:
        assert task["error"]["type"] == "content_policy_violation", task
        assert served == []
    assert not leftovers(tmp_path / "data").get("scratch")


def test_kill_while_the_mp4_streams_down_leaves_no_partial_file(
    tmp_path: Path, fal: tuple[FakeState, Holds], database_url: str | None
) -> None:
    fake, holds = fal
    data = tmp_path / "data"
    # Short timeouts so the dead worker's scratch is stale (swept) within the test.
    env = gateway(data, database_url, fake, result_download_timeout_s=5, step_timeout_s=5)
    key = create_key(env, account="kill-video-download", credits=20, test=False)
    prompt = "a fox runs, killed while its video downloads"
    created = fake.calls["created"]
    try:
        with api_only(env, tmp_path) as base:
            task_id = submit_video(base, key, prompt)
            held = holds.held["download"]
            holds.download = True
            with process(env, "worker", log=tmp_path / "worker1.log") as first:
                wait_until(lambda: holds.held["download"] > held, timeout=30, what="the download")
                wait_until(
                    lambda: list((data / "scratch").glob("result-*/result")),
                    timeout=30,
                    what="the download to be written to scratch",
                )
                first.send_signal(signal.SIGKILL)  # half the MP4 is on its way
                first.wait()
            holds.download = False
            left = leftovers(data)
            [scratch] = left["scratch"]
            assert scratch.startswith("result-")  # the dead worker's, never cleaned up
            assert left.get("files", []) == []  # nothing stored, not even a temporary file
            # The next worker sweeps scratch untouched for longer than any step may run.
            limit = 5.0  # both timeouts above
            newest = max(p.stat().st_mtime for p in (data / "scratch").rglob("*"))
            time.sleep(max(0.0, newest + limit + 0.5 - time.time()))
            finish_with_another_worker(env, tmp_path, task_id)
            task = httpx2.get(
                f"{base}/api/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {key}"}
            ).json()["data"]
            served = [httpx2.get(v["url"]).content for v in task["output"]["videos"]]
    finally:
        holds.download = False
    assert task["status"] == "completed", task
    assert fake.calls["created"] - created == 1  # one fal job
    assert ledger_of(env, task_id) == [("hold", CHARGE), ("capture", CHARGE)]
    assert served == [mp4()]  # the whole file, not the half
    after = leftovers(data)
    assert after["scratch"] == []  # the dead worker's swept, the new one's cleaned up
    stored = after["files"]
    assert len(stored) == 2 and {n.rsplit(".", 1)[1] for n in stored} == {"mp4", "jpg"}, stored
    assert "removed 1 stale scratch entries" in (tmp_path / "worker2.log").read_text()
