"""Waiting requests: 2,000 `GET /api/v1/tasks/{id}` with `Prefer: wait=60` held at once
by one `mediagate serve --no-runner` on PostgreSQL. Measures the server's CPU while they
wait (against the same process idle with nobody waiting), then starts a `mediagate
worker` and measures how long after each task's end (its completed_at in the database)
its waiting request got the answer: the NOTIFY path across processes.

Run alone: `python -m bench.waiting` (PostgreSQL at MEDIAGATE_TEST_POSTGRES)."""

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx2

from bench.harness import bench_environment, bench_key, markdown, postgres_database, write
from mediagate.tasks.service import FINISHED_CHANNEL
from tests.e2e.procs import free_port, process, query, wait_for_http

WAITERS = 2000
IDLE_WINDOW_S = 10.0
SETTLE_S = 2.0
BODY = {"model": "kling-image-o1", "prompt": "a lighthouse, waited on"}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_share(pid: int, window_s: float) -> float:
    """The process's CPU use over the window, in cores (1.0: one core busy)."""
    before = cpu_seconds(pid)
    time.sleep(window_s)
    return (cpu_seconds(pid) - before) / window_s


def settle(pid: int, *, quiet: float = 0.05, longest_s: float = 60.0) -> None:
    """Until the process is quiet (under `quiet` cores over a second), or `longest_s`."""
    deadline = time.monotonic() + longest_s
    time.sleep(SETTLE_S)
    while cpu_share(pid, 1.0) > quiet and time.monotonic() < deadline:
        pass


async def submit_all(base: str, key: str) -> list[str]:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx2.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
        gate = asyncio.Semaphore(32)

        async def one() -> str:
            async with gate:
                response = await client.post("/api/v1/images/generations", json=BODY)
                response.raise_for_status()
                return str(response.json()["data"]["task_id"])

        return list(await asyncio.gather(*(one() for _ in range(WAITERS))))


async def hold(base: str, key: str, task_ids: list[str], held: asyncio.Event) -> dict[str, Any]:
    """Every task waited on at once; each answer's arrival time, and re-waits needed."""
    headers = {"Authorization": f"Bearer {key}", "Prefer": "wait=60"}
    limits = httpx2.Limits(max_connections=WAITERS + 10, max_keepalive_connections=WAITERS + 10)
    arrived: dict[str, float] = {}
    rewaited: set[str] = set()
    rewaits = 0
    async with httpx2.AsyncClient(
        base_url=base, headers=headers, limits=limits, timeout=120
    ) as client:
        errors: list[str] = []

        async def wait_on(task_id: str) -> None:
            nonlocal rewaits
            while True:
                try:
                    response = await client.get(f"/api/v1/tasks/{task_id}")
                except httpx2.TransportError as exc:
                    errors.append(type(exc).__name__)  # counted, and waited on again
                    rewaited.add(task_id)
                    await asyncio.sleep(0.1)
                    continue
                if response.json()["data"]["status"] != "IN_PROGRESS":
                    arrived[task_id] = time.time()
                    return
                rewaits += 1
                rewaited.add(task_id)

        waiting = []
        for task_id in task_ids:  # opened at about 1,000 a second, not all in one burst
            waiting.append(asyncio.create_task(wait_on(task_id)))
            await asyncio.sleep(0.001)
        held.set()
        await asyncio.gather(*waiting)
    return {
        "arrived": arrived,
        "rewaits": rewaits,
        "rewaited": rewaited,
        "transport_errors": len(errors),
    }


def completed_at(env: dict[str, str], task_ids: list[str]) -> dict[str, float]:
    rows = query(env, "SELECT id, completed_at FROM tasks WHERE status = 'completed'")
    ends: dict[str, float] = {}
    for task_id, when in rows:
        if isinstance(when, str):
            when = datetime.fromisoformat(when).replace(tzinfo=UTC)
        ends[str(task_id)] = when.timestamp()
    return {t: ends[t] for t in task_ids if t in ends}


def run(folder: Path) -> dict[str, Any]:
    with postgres_database() as url:
        env = bench_environment(
            folder, url, sandbox_latency_s=0.2, db_pool_size=10, wait_recheck_s=5
        )
        key = bench_key(env)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = folder / "serve.log"
        with process(env, "serve", "--port", str(port), "--no-runner", log=log) as server:
            wait_for_http(base, server, log)
            task_ids = asyncio.run(submit_all(base, key))
            settle(server.pid)
            idle_alone = cpu_share(server.pid, IDLE_WINDOW_S)

            result: dict[str, Any] = {}

            async def scenario() -> None:
                # Each task's NOTIFY as another listener sees it: when its end was
                # committed, which the row's completed_at (stamped before the commit,
                # while the worker is busy with other steps) only approximates.
                notified: dict[str, float] = {}
                observer = await asyncpg.connect(url.replace("+asyncpg", ""))
                await observer.add_listener(
                    FINISHED_CHANNEL, lambda *args: notified.setdefault(args[3], time.time())
                )
                result["notified"] = notified
                held = asyncio.Event()
                holding = asyncio.create_task(hold(base, key, task_ids, held))
                await held.wait()
                await asyncio.to_thread(settle, server.pid)  # the last ones reach their wait
                result["idle_waiting"] = await asyncio.to_thread(
                    cpu_share, server.pid, IDLE_WINDOW_S
                )
                worker_port = free_port()
                worker_log = folder / "worker.log"
                with process(
                    env, "worker", "--metrics-port", str(worker_port), log=worker_log
                ) as worker:
                    before = cpu_seconds(server.pid)
                    released_from = time.time()
                    result.update(await holding)
                    result["release_s"] = time.time() - released_from
                    result["release_cpu_s"] = cpu_seconds(server.pid) - before
                    del worker
                await observer.close()

            asyncio.run(scenario())
        ends = completed_at(env, task_ids)
    arrived, notified = result["arrived"], result["notified"]
    lags = sorted(arrived[t] - ends[t] for t in ends if t in arrived)
    hint_lags = sorted(arrived[t] - notified[t] for t in notified if t in arrived)
    # Requests still waiting in their first 60 s when their task ended: the ones whose
    # answer only a hint could bring (the rest were re-sent after a timed-out wait, all
    # at about the same moment, and queue behind that burst).
    held = [t for t in notified if t in arrived and t not in result["rewaited"]]
    held_lags = sorted(arrived[t] - notified[t] for t in held)
    return {
        "waiters": WAITERS,
        "answered": len(result["arrived"]),
        "rewaits": result["rewaits"],
        "transport_errors": result["transport_errors"],
        "server_cpu_idle_alone_cores": round(idle_alone, 4),
        "server_cpu_idle_waiting_cores": round(result["idle_waiting"], 4),
        "idle_window_s": IDLE_WINDOW_S,
        "release_all_s": round(result["release_s"], 2),
        "server_cpu_during_release_s": round(result["release_cpu_s"], 2),
        "release_lag_ms": percentiles(lags),
        "release_lag_after_notify_ms": percentiles(hint_lags),
        "held_throughout": len(held),
        "held_throughout_lag_after_notify_ms": percentiles(held_lags),
    }


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p90/p99/max of sorted `values` (seconds), in milliseconds."""
    quantile = statistics.quantiles(values, n=100)
    return {
        "p50": round(quantile[49] * 1000, 1),
        "p90": round(quantile[89] * 1000, 1),
        "p99": round(quantile[98] * 1000, 1),
        "max": round(values[-1] * 1000, 1),
    }


def run_all() -> dict[str, Any]:
    """`make bench`'s entry: the run in a scratch folder (its logs shown if it fails)."""
    with tempfile.TemporaryDirectory(prefix="mediagate-bench-waiting-") as tmp:
        try:
            return run(Path(tmp))
        except BaseException:
            for log in Path(tmp).glob("*.log"):
                print(f"--- {log.name}\n{log.read_text()[-3000:]}", file=sys.stderr)
            raise


def table(data: dict[str, Any]) -> str:
    lag, hint = data["release_lag_ms"], data["release_lag_after_notify_ms"]
    held = data["held_throughout_lag_after_notify_ms"]
    return markdown(
        [
            "waiting",
            "CPU idle, nobody waiting",
            "CPU idle, 2,000 waiting",
            "answer after completed_at p50 / p99",
            "answer after NOTIFY p50 / p99",
            "same, requests held in their first wait",
        ],
        [
            [
                data["answered"],
                f"{data['server_cpu_idle_alone_cores'] * 100:.2f} % of a core",
                f"{data['server_cpu_idle_waiting_cores'] * 100:.2f} % of a core",
                f"{lag['p50']} / {lag['p99']} ms",
                f"{hint['p50']} / {hint['p99']} ms",
                f"{held['p50']} / {held['p99']} ms ({data['held_throughout']} requests)",
            ]
        ],
    )


def main() -> None:
    data = run_all()
    write("waiting", data, table(data))
    print(json.dumps(data, indent=2))


if __name__ == "__main__":
    main()
