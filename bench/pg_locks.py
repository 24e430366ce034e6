"""What one account's submits wait on, on PostgreSQL (issue 18): while one `serve` process
takes submits of one account at concurrency 32, sample pg_stat_activity every 5 ms and
report how many of its backends were waiting on a lock, idle in a transaction (holding
locks while waiting for our next statement) or running. On a busy machine these shares
compare better before/after than req/s do.

    PYTHONPATH=$PWD python -m bench.pg_locks   (PostgreSQL at MEDIAGATE_TEST_POSTGRES)
"""

import asyncio
import json
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg

from bench.api import BODY, CONCURRENCY
from bench.harness import POSTGRES, bench_environment, bench_key, load, postgres_database, serve

SAMPLE_S = 0.005


async def _sample(database: str, stop: threading.Event, seen: Counter[str]) -> None:
    connection = await asyncpg.connect(POSTGRES)
    try:
        while not stop.is_set():
            rows = await connection.fetch(
                "SELECT state, wait_event_type FROM pg_stat_activity"
                " WHERE datname = $1 AND backend_type = 'client backend'"
                " AND query NOT LIKE 'LISTEN%'",
                database,
            )
            seen["samples"] += 1
            for state, wait in rows:
                kind = "lock wait" if wait == "Lock" else state or "unknown"
                seen[kind] += 1
            await asyncio.sleep(SAMPLE_S)
    finally:
        await connection.close()


def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, postgres_database() as url:
        folder = Path(tmp)
        env = bench_environment(folder / "pg", url, embedded_runner="false")
        headers = {"Authorization": f"Bearer {bench_key(env)}"}
        with serve(env, folder, "--no-runner", "--workers", "1") as base:
            submit = f"{base}/api/v1/images/generations"
            load(submit, method="POST", body=BODY, headers=headers, requests=300, folder=folder)
            stop = threading.Event()
            seen: Counter[str] = Counter()
            name = url.rsplit("/", 1)[1]
            sampler = threading.Thread(target=asyncio.run, args=(_sample(name, stop, seen),))
            sampler.start()
            try:
                measured = load(
                    submit,
                    method="POST",
                    body=BODY,
                    headers=headers,
                    concurrency=CONCURRENCY,
                    requests=3000,
                    duration=8.0,
                    folder=folder,
                )
            finally:
                stop.set()
                sampler.join()
    samples = max(seen.pop("samples", 0), 1)
    return {
        "backends (mean per sample)": {k: round(v / samples, 2) for k, v in seen.items()},
        "samples": samples,
        "load": measured,
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2, default=str))
