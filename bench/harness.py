"""What every benchmark needs: fresh databases, mediagate processes, the load generator in
its own process, and one place where results are written."""

import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from collections import Counter
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


BENCH_SETTINGS: dict[str, Any] = {
    "rate_limit_per_s": 0,
    "max_in_flight_per_account": 10**9,
}
"""The protective settings the benchmark turns off (every row but the defaults row): the
per-key rate limit (0: none) and the per-account cap on tasks in progress. The page
lists them, with what a user gets by default, from `protective_settings`."""


def bench_environment(
    folder: Path, database_url: str | None, *, defaults: bool = False, **settings: Any
) -> dict[str, str]:
    """A migrated database and the environment of mediagate processes using it: with
    BENCH_SETTINGS, or with nothing changed but the log level when `defaults`."""
    values: dict[str, Any] = {
        **({} if defaults else BENCH_SETTINGS),
        "log_level": "WARNING",
        **settings,
    }
    env = environment(folder / "data", database_url, **values)
    cli(env, "migrate")
    return env


def protective_settings() -> list[tuple[str, str, str]]:
    """(setting, what the benchmark uses, what a user gets) for each protective setting
    the benchmark changes or leans on, read from BENCH_SETTINGS and Settings' defaults."""
    from mediagate.core.settings import Settings

    def shown(value: Any) -> str:
        return f"{value:,}" if isinstance(value, int) else f"{value:g}"

    fields = Settings.model_fields
    rows = [
        (f"MEDIAGATE_{name.upper()}", shown(value), shown(fields[name].default))
        for name, value in BENCH_SETTINGS.items()
    ]
    cache = fields["key_cache_s"].default
    rows.append(
        (
            "MEDIAGATE_KEY_CACHE_S",
            f"{cache:g} (the default: a verified key is trusted this long without a read)",
            f"{cache:g}",
        )
    )
    rows.append(
        (
            "`serve --no-runner` (MEDIAGATE_EMBEDDED_RUNNER=false)",
            "submit and poll rows: tasks are queued, not run",
            "the runner runs in every server process",
        )
    )
    return rows


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
    rate: float | None = None,
    folder: Path,
) -> dict[str, Any]:
    """Run the load generator in its own process; its measurements (closed loop, or open
    loop at `rate` requests per second)."""
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
    if rate is not None:
        command += ["--rate", str(rate)]
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


RUNS = 3
"""Each measured row runs this many times; the page shows the median and the range."""


def warm_then_measure(
    url: str,
    *,
    folder: Path,
    warmup: int = 500,
    concurrency: int = 32,
    requests: int = 20_000,
    duration: float = 5.0,
    runs: int = RUNS,
    **request: Any,
) -> dict[str, Any]:
    """A short warm-up, then `runs` measured runs of the same request: their median and
    range (see `repeated`)."""
    load(url, requests=warmup, folder=folder, **request)
    return repeated(
        [
            load(
                url,
                concurrency=concurrency,
                requests=requests,
                duration=duration,
                folder=folder,
                **request,
            )
            for _ in range(runs)
        ]
    )


def repeated(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs of one row as one: the median of each figure (rps, p50_ms, ...) with
    its range (`rps_range`: [lowest, highest]), the non-2xx answers and errors of all runs
    added up, `clean` only if every run was clean, and the runs themselves."""
    statuses: Counter[str] = Counter()
    for r in results:
        statuses.update(r["statuses"])
    merged: dict[str, Any] = {
        key: results[0][key] for key in ("mode", "rate", "concurrency") if key in results[0]
    }
    for key in ("rps", "p50_ms", "p90_ms", "p99_ms", "max_ms"):
        values = [float(r[key]) for r in results]
        merged[key] = round(statistics.median(values), 2)
        merged[f"{key.removesuffix('_ms')}_range"] = [min(values), max(values)]
    merged.update(
        ok=sum(r["ok"] for r in results),
        non_2xx=sum(r["non_2xx"] for r in results),
        errors=sum(r["errors"] for r in results),
        statuses=dict(sorted(statuses.items())),
        clean=all(r["clean"] for r in results),
        runs=results,
    )
    return merged


def spread(r: dict[str, Any], key: str = "rps") -> str:
    """`median (lowest–highest)` of a repeated figure, for a table cell."""
    low, high = r.get(f"{key.removesuffix('_ms')}_range", [r[key], r[key]])
    return f"{r[key]:g} ({low:g}–{high:g})"


def answers(r: dict[str, Any]) -> str:
    """What the non-2xx answers and errors of a row were, for a table cell."""
    if r.get("clean", False):
        return "all 2xx"
    others = {k: v for k, v in r["statuses"].items() if not k.startswith("2")}
    return f"**{r.get('non_2xx', 0)} non-2xx {others}, {r['errors']} errors**"


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
