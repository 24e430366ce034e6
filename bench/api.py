"""Submit and poll: requests per second and latency at a fixed concurrency, on SQLite and
PostgreSQL, with one and two server processes (`serve --no-runner --workers N`)."""

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2

from bench.harness import (
    RUNS,
    answers,
    bench_environment,
    bench_key,
    markdown,
    postgres_database,
    protective_settings,
    serve,
    spread,
    warm_then_measure,
    write,
)

BODY = json.dumps({"model": "kling-image-o1", "prompt": "A red fox in the snow"}).encode()
CONCURRENCY = 32


OPEN_LOOP_SHARE = 0.7
"""The open-loop row sends at this share of the same row's closed-loop median."""


def submit_run(
    database: str, processes: int, folder: Path, *, defaults: bool = False
) -> dict[str, Any]:
    """Submits at CONCURRENCY; `defaults`: a `mediagate serve` with the settings a user
    gets (rate limit, in-flight cap and embedded runner on), instead of the bench's."""

    def measure(url: str | None) -> dict[str, Any]:
        name = f"{database}-{processes}{'-defaults' if defaults else ''}"
        if defaults:
            env = bench_environment(folder / name, url, defaults=True)
        else:
            env = bench_environment(folder / name, url, embedded_runner="false")
        key = bench_key(env)
        headers = {"Authorization": f"Bearer {key}"}
        args = (
            ("--workers", str(processes))
            if defaults
            else ("--no-runner", "--workers", str(processes))
        )
        with serve(env, folder, *args) as base:
            return warm_then_measure(
                f"{base}/api/v1/images/generations",
                method="POST",
                body=BODY,
                headers=headers,
                concurrency=CONCURRENCY,
                folder=folder,
                **({"warmup": 0} if defaults else {}),
            )

    if database == "postgresql":
        with postgres_database() as url:
            return measure(url)
    return measure(None)


def poll_run(folder: Path) -> dict[str, Any]:
    """Half the tasks completed, half still in progress, polled round-robin by one and by
    two server processes; then two processes in the open loop."""
    env = bench_environment(folder / "poll", None, sandbox_latency_s=0)
    key = bench_key(env)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    ids = []
    with serve(env, folder) as base, httpx2.Client(base_url=base, headers=headers) as client:
        for _ in range(100):
            ids.append(
                client.post("/api/v1/images/generations", content=BODY).json()["data"]["task_id"]
            )
        deadline = time.monotonic() + 120
        while client.get(f"/api/v1/tasks/{ids[-1]}").json()["data"]["status"] == "IN_PROGRESS":
            assert time.monotonic() < deadline, "sandbox tasks did not finish"
            time.sleep(0.2)
    rows: dict[str, Any] = {}
    with (
        serve(env, folder, "--no-runner") as base,
        httpx2.Client(base_url=base, headers=headers) as client,
    ):
        for _ in range(100):  # no runner now: these stay in progress
            ids.append(
                client.post("/api/v1/images/generations", content=BODY).json()["data"]["task_id"]
            )
    paths = [f"/api/v1/tasks/{i}" for i in ids]
    for processes in (1, 2):
        with serve(env, folder, "--no-runner", "--workers", str(processes)) as base:
            rows[f"sqlite/{processes}"] = warm_then_measure(
                f"{base}/",
                headers=headers,
                paths=paths,
                concurrency=CONCURRENCY,
                requests=50_000,
                folder=folder,
            )
            if processes == 2:
                rate = round(rows["sqlite/2"]["rps"] * OPEN_LOOP_SHARE)
                rows["sqlite/2/open"] = warm_then_measure(
                    f"{base}/",
                    headers=headers,
                    paths=paths,
                    concurrency=CONCURRENCY,
                    requests=50_000,
                    rate=max(rate, 1),
                    folder=folder,
                )
    return {**rows, "tasks": {"completed": 100, "in_progress": 100}}


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mg-bench-") as tmp:
        folder = Path(tmp)
        submits = {
            f"{db}/{n}": submit_run(db, n, folder)
            for db in ("sqlite", "postgresql")
            for n in (1, 2)
        }
        submits["sqlite/1/defaults"] = submit_run("sqlite", 1, folder, defaults=True)
        polls = poll_run(folder)
    return {
        "concurrency": CONCURRENCY,
        "runs_per_row": RUNS,
        "settings": protective_settings(),
        "submit": submits,
        "poll": polls,
    }


def table(data: dict[str, Any]) -> str:
    def row(endpoint: str, key: str, r: dict[str, Any]) -> list[object]:
        db, processes, *rest = key.split("/")
        if "defaults" in rest:
            how = "**defaults a user gets** (rate limit, in-flight cap, runner on)"
        elif "open" in rest:
            how = f"open loop at {r['rate']:g} req/s, latency from the due time"
        else:
            how = "closed loop, bench settings"
        return [
            endpoint,
            db,
            processes,
            how,
            spread(r),
            spread(r, "p50_ms"),
            spread(r, "p99_ms"),
            answers(r),
        ]

    rows = [row("submit", key, r) for key, r in data["submit"].items()]
    rows += [row("poll", key, r) for key, r in data["poll"].items() if key != "tasks"]
    return markdown(
        [
            "endpoint",
            "database",
            "server processes",
            "how",
            "2xx req/s, median (range)",
            "p50 ms",
            "p99 ms",
            "answers",
        ],
        rows,
    )


def settings_table(data: dict[str, Any]) -> str:
    """The protective settings the benchmark changes, beside what a user gets."""
    return markdown(
        ["setting", "in the benchmark", "default (what a user gets)"],
        [list(r) for r in data["settings"]],
    )


if __name__ == "__main__":
    result = run()
    write("api", result, table(result))
