"""What every benchmark needs: fresh databases, mediagate processes, the load generator in
its own process, and one place where results are written."""

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg

from tests.e2e.procs import cli, create_key, environment, free_port, process, wait_for_http

__all__ = ["free_port", "process", "wait_for_http"]

RESULTS = Path(__file__).parent / "results"
POSTGRES = os.environ.get(
    "MEDIAGATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _admin(sql: str) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(POSTGRES)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(go())


@contextmanager
def postgres_database() -> Iterator[str]:
    name = f"mg_bench_{secrets.token_hex(4)}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield (
            POSTGRES.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
            + f"/{name}"
        )
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench_environment(folder: Path, database_url: str | None, **settings: Any) -> dict[str, str]:
    values: dict[str, Any] = {
        "rate_limit_per_s": 0,
        "max_in_flight_per_account": 10**9,
        "log_level": "WARNING",
        **settings,
    }
    env = environment(folder / "data", database_url, **values)
    cli(env, "migrate")
    return env


def bench_key(env: dict[str, str], credits: int = 10**9, *, live: bool = False) -> str:
    return create_key(env, account=f"bench-{secrets.token_hex(3)}", credits=credits, test=not live)


@contextmanager
def serve(env: dict[str, str], folder: Path, *args: str, port: int | None = None) -> Iterator[str]:
    """A `mediagate serve` with these arguments; its base URL."""
    port = port or free_port()
    log = folder / f"serve-{port}.log"
    with process(env, "serve", "--port", str(port), *args, log=log) as server:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(base, server, log)
        yield base


def load(
    url: str,
    *,
    concurrency: int = 32,
    requests: int = 5000,
    duration: float = 10.0,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    paths: list[str] | None = None,
    folder: Path,
) -> dict[str, Any]:
    """Run the load generator in its own process; its measurements."""
    command = [
        sys.executable,
        "-m",
        "bench.loadgen",
        "--url",
        url,
        "--method",
        method,
        "--concurrency",
        str(concurrency),
        "--requests",
        str(requests),
        "--duration",
        str(duration),
    ]
    for name, value in (headers or {}).items():
        command += ["--header", f"{name}: {value}"]
    if body is not None:
        path = folder / f"body-{secrets.token_hex(3)}.json"
        path.write_bytes(body)
        command += ["--body-file", str(path)]
    if paths:
        path = folder / f"paths-{secrets.token_hex(3)}.txt"
        path.write_text("\n".join(paths))
        command += ["--paths-file", str(path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 120)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr[-2000:]}")
    return dict(json.loads(done.stdout))


def warm_then_measure(
    url: str,
    *,
    folder: Path,
    warmup: int = 500,
    concurrency: int = 32,
    requests: int = 20_000,
    duration: float = 10.0,
    **request: Any,
) -> dict[str, Any]:
    """A short warm-up, then the measured run of the same request."""
    load(url, requests=warmup, folder=folder, **request)
    return load(
        url, concurrency=concurrency, requests=requests, duration=duration, folder=folder, **request
    )


def write(name: str, data: dict[str, Any], table: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    data = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        **data,
    }
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(table.rstrip() + "\n")
    print(table, flush=True)


def markdown(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


@contextmanager
def fake(kind: str, folder: Path, **options: Any) -> Iterator[str]:
    """A fake upstream process (bench.fakes); its base URL."""
    port = free_port()
    args = [f"--{k}={v}" for k, v in options.items()]
    with (folder / f"fake-{kind}.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.fakes", kind, "--port", str(port), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, proc)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # still draining keep-alive connections
            proc.kill()
            proc.wait()


def wait_until_up(base: str, proc: subprocess.Popen[bytes], path: str = "/") -> None:
    import httpx2

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{base} exited"
        try:
            httpx2.get(base + path, timeout=1)
            return
        except httpx2.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{base} did not start")


def rss_mb(pid: int) -> dict[str, float]:
    """Current and peak resident memory of a process, from /proc."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = round(int(rest.split()[0]) / 1024, 1)
    return {"rss_mb": values.get("VmRSS", 0.0), "peak_rss_mb": values.get("VmHWM", 0.0)}


def histogram_quantile(text: str, name: str, q: float) -> float | None:
    """The upper bound of the bucket holding quantile q of a Prometheus histogram."""
    from prometheus_client.parser import text_string_to_metric_families

    buckets: list[tuple[float, float]] = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == f"{name}_bucket":
                buckets.append((float(s.labels["le"]), s.value))
    buckets.sort()
    if not buckets or buckets[-1][1] == 0:
        return None
    total = buckets[-1][1]
    for bound, count in buckets:
        if count >= q * total:
            return bound
    return None
