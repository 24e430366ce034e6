"""The floor: what the same load generator gets, in the same run, from the least a Python
web service can do on this machine, so mediagate's figures can be read as a share of it:

- `bare`: a FastAPI app answering a small JSON (GET), the floor for a poll;
- `insert`: the same app doing one SQLite insert in a write transaction per request
  (POST with the submit's body, WAL and synchronous=NORMAL as mediagate's SQLite), the
  floor for a submit.

Each runs as one uvicorn process (uvloop, httptools: what `mediagate serve` runs on) at
the submit rows' concurrency, with the same repeats.

    python -m bench.floor            # measure both, write bench/results/floor.*
"""

import os
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request

from bench.api import BODY, CONCURRENCY
from bench.harness import (
    RUNS,
    answers,
    free_port,
    markdown,
    spread,
    wait_until_up,
    warm_then_measure,
    write,
)

DB_ENV = "MEDIAGATE_FLOOR_DB"


def bare_app() -> FastAPI:
    app = FastAPI()

    @app.get("/x")
    async def answer() -> dict[str, Any]:
        return {"ok": True, "status": "COMPLETED"}

    return app


def insert_app() -> FastAPI:
    """One connection per process, as mediagate's SQLite writer; the call runs on the
    event loop, as mediagate's inline SQLite calls do."""
    db = sqlite3.connect(os.environ[DB_ENV], isolation_level=None, check_same_thread=False)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=5000"):
        db.execute(f"PRAGMA {pragma}")
    db.execute("CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, body TEXT, created REAL)")
    app = FastAPI()

    @app.get("/x")
    async def health() -> dict[str, Any]:
        return {"ok": True}

    @app.post("/x", status_code=201)
    async def insert(request: Request) -> dict[str, Any]:
        body = await request.json()
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(
                "INSERT INTO rows (body, created) VALUES (?, julianday('now'))",
                (body["prompt"],),
            ).lastrowid
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return {"id": row}

    return app


@contextmanager
def floor_server(kind: str, folder: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, DB_ENV: str(folder / "floor.db")}
    with (folder / f"floor-{kind}.log").open("ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                f"bench.floor:{kind}_app",
                "--port",
                str(port),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, proc, "/x")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(**options: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mg-floor-") as tmp:
        folder = Path(tmp)
        with floor_server("bare", folder) as base:
            bare = warm_then_measure(
                f"{base}/x", concurrency=CONCURRENCY, folder=folder, requests=50_000, **options
            )
        with floor_server("insert", folder) as base:
            insert = warm_then_measure(
                f"{base}/x",
                method="POST",
                body=BODY,
                concurrency=CONCURRENCY,
                folder=folder,
                **options,
            )
    return {"concurrency": CONCURRENCY, "runs_per_row": RUNS, "bare": bare, "insert": insert}


def share(ours: dict[str, Any], floor: dict[str, Any]) -> float | None:
    """Our median throughput as a fraction of the floor's, from the same run."""
    return round(ours["rps"] / floor["rps"], 2) if floor.get("rps") else None


def table(data: dict[str, Any]) -> str:
    rows = [
        [
            "bare FastAPI, small JSON (GET)",
            "poll",
            spread(data["bare"]),
            spread(data["bare"], "p50_ms"),
            spread(data["bare"], "p99_ms"),
            answers(data["bare"]),
        ],
        [
            "FastAPI + one SQLite insert in a write transaction (POST)",
            "submit",
            spread(data["insert"]),
            spread(data["insert"], "p50_ms"),
            spread(data["insert"], "p99_ms"),
            answers(data["insert"]),
        ],
    ]
    return markdown(
        ["floor (1 uvicorn process)", "floor for", "2xx req/s", "p50 ms", "p99 ms", "answers"],
        rows,
    )


if __name__ == "__main__":
    result = run()
    write("floor", result, table(result))
