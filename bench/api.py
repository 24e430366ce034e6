"""Submit and poll: requests per second and latency at a fixed concurrency, on SQLite and
PostgreSQL, with one and two server processes (`serve --no-runner --workers N`)."""

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2

from bench.harness import (
    bench_environment,
    bench_key,
    markdown,
    postgres_database,
    serve,
    warm_then_measure,
    write,
)

BODY = json.dumps({"model": "kling-image-o1", "prompt": "A red fox in the snow"}).encode()
CONCURRENCY = 32


def submit_run(database: str, processes: int, folder: Path) -> dict[str, Any]:
    def measure(url: str | None) -> dict[str, Any]:
        env = bench_environment(folder / f"{database}-{processes}", url, embedded_runner="false")
        key = bench_key(env)
        headers = {"Authorization": f"Bearer {key}"}
        with serve(env, folder, "--no-runner", "--workers", str(processes)) as base:
            return warm_then_measure(
                f"{base}/api/v1/images/generations",
                method="POST",
                body=BODY,
                headers=headers,
                concurrency=CONCURRENCY,
                folder=folder,
            )

    if database == "postgresql":
        with postgres_database() as url:
            return measure(url)
    return measure(None)


def poll_run(folder: Path, processes: int = 2) -> dict[str, Any]:
    """Half the tasks completed, half still in progress, polled round-robin."""
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
    with serve(env, folder, "--no-runner", "--workers", str(processes)) as base:
        with httpx2.Client(base_url=base, headers=headers) as client:
            for _ in range(100):  # no runner now: these stay in progress
                ids.append(
                    client.post("/api/v1/images/generations", content=BODY).json()["data"][
                        "task_id"
                    ]
                )
        paths = [f"/api/v1/tasks/{i}" for i in ids]
        result = warm_then_measure(
            f"{base}/",
            headers=headers,
            paths=paths,
            concurrency=CONCURRENCY,
            requests=50_000,
            folder=folder,
        )
    return {**result, "processes": processes, "tasks": {"completed": 100, "in_progress": 100}}


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mg-bench-") as tmp:
        folder = Path(tmp)
        submits = {
            f"{db}/{n}": submit_run(db, n, folder)
            for db in ("sqlite", "postgresql")
            for n in (1, 2)
        }
        polls = poll_run(folder)
    return {"concurrency": CONCURRENCY, "submit": submits, "poll": polls}


def table(data: dict[str, Any]) -> str:
    def row(endpoint: str, db: str, processes: object, r: dict[str, Any]) -> list[object]:
        return [
            endpoint,
            db,
            processes,
            r["rps"],
            r["p50_ms"],
            r["p99_ms"],
            r["errors"],
            r["statuses"],
        ]

    rows = [row("submit", *key.split("/"), r) for key, r in data["submit"].items()]
    rows.append(row("poll", "sqlite", data["poll"]["processes"], data["poll"]))
    return markdown(
        [
            "endpoint",
            "database",
            "server processes",
            "req/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "statuses",
        ],
        rows,
    )


if __name__ == "__main__":
    result = run()
    write("api", result, table(result))
