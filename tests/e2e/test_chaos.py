"""Chaos: 500 tasks in flight at a slow provider (the Kling fake, 2–10 s per task), three
worker processes on one PostgreSQL, one of them SIGKILLed at a random moment five times,
then all three at once, then restarted. Nothing may be lost, charged twice or created
upstream twice, and the ledger must add up. The counts are printed (`pytest -s`)."""

import json
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx2
import pytest

from tests.e2e.procs import api_only, cli, create_key, environment, process, query, wait_until
from tests.providers.fakes import FakeState, kling_app, serve

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
KLING_SECRET = "kling-secret-key-0123456789abcdefghij"
TASKS = 500
PRICE = 6


@pytest.fixture(params=["refuse", "existing"])
def kling(request: pytest.FixtureRequest) -> Iterator[FakeState]:
    """What Kling answers to a repeated external_task_id is not documented: the fake
    refuses it, or answers with the existing task; the guarantees must hold both ways."""
    state = FakeState("kling-access", latency_s=(2.0, 10.0), duplicates=request.param)
    with serve(kling_app(state, KLING_SECRET), state):
        yield state


class Workers:
    """Three `mediagate worker` processes, each replaceable after a SIGKILL."""

    def __init__(self, env: dict[str, str], folder: Path, stack: ExitStack) -> None:
        self.env, self.folder, self.stack = env, folder, stack
        self.started = 0
        self.procs: list[subprocess.Popen[bytes]] = [self._start() for _ in range(3)]

    def _start(self) -> subprocess.Popen[bytes]:
        self.started += 1
        log = self.folder / f"worker{self.started}.log"
        return self.stack.enter_context(process(self.env, "worker", log=log))

    def kill(self, index: int) -> None:
        self.procs[index].send_signal(signal.SIGKILL)
        self.procs[index].wait()

    def restart(self, index: int) -> None:
        self.procs[index] = self._start()


def test_chaos(tmp_path: Path, kling: FakeState, database_url: str | None) -> None:
    if database_url is None:
        pytest.skip("the chaos test is PostgreSQL's (several worker processes, one database)")
    seed = random.randrange(1_000_000)
    chance = random.Random(seed)
    port = int(kling.base.rsplit(":", 1)[1])
    env = environment(
        tmp_path / "data",
        database_url,
        lease_s=6,
        reconcile_interval_s=1,
        runner_poll_interval_s=0.25,
        rate_limit_per_s=0,
        max_in_flight_per_account=TASKS,
        db_pool_size=4,  # 5 processes (and the dead ones' until PostgreSQL notices)
        db_max_overflow=4,
        kling_access_key=kling.key,
        kling_secret_key=KLING_SECRET,
        kling_base_url=kling.base,
        fetch_allow_private_hosts=json.dumps(["127.0.0.1"]),
        fetch_ports=json.dumps([80, 443, port]),
        log_level="WARNING",
    )
    cli(env, "migrate")
    key = create_key(env, account="chaos", credits=TASKS * PRICE, test=False)
    events: list[str] = []

    with ExitStack() as stack:
        base = stack.enter_context(api_only(env, tmp_path))
        with ThreadPoolExecutor(16) as pool:  # all 500 accepted and waiting, then the workers
            task_ids = list(pool.map(lambda i: submit(base, key, i), range(TASKS)))
        workers = Workers(env, tmp_path, stack)

        def in_flight() -> int:
            return int(query(env, "SELECT count(*) FROM tasks WHERE status = 'in_progress'")[0][0])

        wait_until(lambda: kling.tasks, timeout=30, what="the workers to start submitting")
        for round_ in range(5):
            time.sleep(chance.uniform(0.5, 2.0))
            victim = chance.randrange(3)
            workers.kill(victim)
            events.append(
                f"round {round_ + 1}: SIGKILL worker {victim}; {in_flight()} tasks in flight,"
                f" {len(kling.tasks)} accepted upstream so far"
            )
            workers.restart(victim)
        time.sleep(chance.uniform(0.5, 2.0))
        for i in range(3):
            workers.kill(i)
        events.append(
            f"SIGKILL all three workers; {in_flight()} tasks in flight,"
            f" {len(kling.tasks)} accepted upstream so far"
        )
        for i in range(3):
            workers.restart(i)
        events.append("restarted three workers")

        wait_until(
            lambda: not query(env, "SELECT 1 FROM tasks WHERE status = 'in_progress' LIMIT 1"),
            timeout=240,
            what="every task to finish",
        )

    statuses = Counter(dict(query(env, "SELECT status, count(*) FROM tasks GROUP BY status")))
    charged_twice = query(
        env,
        "SELECT task_id FROM ledger_transfers WHERE kind = 'capture' "
        "GROUP BY task_id HAVING count(*) > 1",
    )
    pending_holds = query(
        env,
        "SELECT h.id FROM ledger_transfers h WHERE h.kind = 'hold' AND NOT EXISTS "
        "(SELECT 1 FROM ledger_transfers r WHERE r.pending_id = h.id)",
    )
    references = Counter(t["reference"] for t in kling.tasks.values())
    created_twice = [ref for ref, n in references.items() if n > 1]
    captured = query(
        env,
        "SELECT coalesce(sum(amount), 0), count(*) FROM ledger_transfers WHERE kind = 'capture'",
    )[0]
    prices = query(env, "SELECT coalesce(sum(price), 0) FROM tasks WHERE status = 'completed'")[0][
        0
    ]
    posted, pending = query(
        env,
        "SELECT debits_posted, debits_pending FROM ledger_accounts "
        "WHERE code = 'user' AND mode = 'live'",
    )[0]
    lost = TASKS - sum(statuses.values()) + statuses.get("in_progress", 0)
    report = {
        "seed": seed,
        "duplicates": kling.duplicates,
        "events": events,
        "tasks": TASKS,
        "accepted": len(set(task_ids)),
        "completed": statuses.get("completed", 0),
        "failed": statuses.get("failed", 0),
        "lost": lost,
        "charged_twice": len(charged_twice),
        "created_upstream_twice": len(created_twice),
        "duplicate_submits_refused_upstream": kling.calls["duplicate"],
        "upstream_tasks": len(kling.tasks),
        "holds_pending": len(pending_holds),
        "captured_credits": int(captured[0]),
        "sum_of_completed_prices": int(prices),
        "user_debits_posted": int(posted),
        "user_debits_pending": int(pending),
        "worker_processes_started": workers.started,
    }
    print("\nchaos:", json.dumps(report, indent=2))
    assert report["accepted"] == TASKS and lost == 0
    assert statuses == Counter({"completed": TASKS}), statuses
    assert not charged_twice and not created_twice and not pending_holds
    assert len(kling.tasks) == TASKS
    assert captured[0] == prices == posted == TASKS * PRICE and captured[1] == TASKS
    assert pending == 0


def submit(base: str, key: str, i: int) -> str:
    body = {"model": "kling-image-o1", "prompt": f"[fake:latency] chaos {i}"}
    for _ in range(5):
        try:
            response = httpx2.post(
                f"{base}/api/v1/images/generations",
                json=body,
                headers={"Authorization": f"Bearer {key}", "Idempotency-Key": f"chaos-{i}"},
                timeout=30,
            )
        except httpx2.TransportError:
            continue  # retried with the same Idempotency-Key: never a second task
        assert response.status_code == 200, response.text
        return str(response.json()["data"]["task_id"])
    raise AssertionError(f"task {i} could not be submitted")
