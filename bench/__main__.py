"""`make bench` / `python -m bench [name ...]`: run the benchmarks, write each one's JSON and
Markdown table to bench/results/, and the summary to docs/performance.md.
`python -m bench summary` rewrites docs/performance.md from the last results."""

import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import api, inflight, latency, peer
from bench.harness import RESULTS, write

DOCS = Path(__file__).parent.parent / "docs" / "performance.md"
TEMPLATE = (Path(__file__).parent / "performance.template.md").read_text()

BENCHMARKS: dict[str, tuple[Callable[[], dict[str, Any]], Callable[[dict[str, Any]], str]]] = {
    "api": (api.run, api.table),
    "inflight": (lambda: inflight.run_all(limit_s=120.0), inflight.table),
    "latency": (latency.run, latency.table),
    "peer": (peer.run, peer.table),
}


def main(names: list[str]) -> None:
    if names == ["summary"]:
        write_summary()
        return
    started = time.monotonic()
    results: dict[str, dict[str, Any]] = {}
    for name in names or list(BENCHMARKS):
        run, table = BENCHMARKS[name]
        print(f"\n== {name}", flush=True)
        results[name] = run()
        write(name, results[name], table(results[name]))
    seconds = time.monotonic() - started
    print(f"\nall benchmarks: {seconds:.0f} s")
    if set(results) == set(BENCHMARKS):
        (RESULTS / "run.json").write_text(json.dumps({"seconds": round(seconds)}) + "\n")
        write_summary()


def write_summary() -> None:
    """docs/performance.md from the results of the last full run."""
    results = {name: json.loads((RESULTS / f"{name}.json").read_text()) for name in BENCHMARKS}
    seconds = json.loads((RESULTS / "run.json").read_text())["seconds"]
    DOCS.write_text(summary(results, seconds))
    print(f"wrote {DOCS}")


def verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def summary(r: dict[str, dict[str, Any]], seconds: float) -> str:
    submit = r["api"]["submit"]
    sqlite2, poll = submit["sqlite/2"], r["api"]["poll"]
    fl = inflight.best(r["inflight"])
    peer = r["peer"]
    callbacks = next(m for m in r["latency"]["modes"] if m["mode"] == "callbacks")
    lag = fl["loop_lag_p99_ms_at_most"] or 0.0
    rows = [
        (
            "Submit, SQLite, 2 server processes",
            "≥ 1,000 req/s, p99 < 50 ms",
            f"{sqlite2['rps']} req/s, p99 {sqlite2['p99_ms']} ms",
            verdict(sqlite2["rps"] >= 1000 and sqlite2["p99_ms"] < 50),
        ),
        (
            "Poll (half completed, half in progress)",
            "≥ 3,000 req/s",
            f"{poll['rps']} req/s, p99 {poll['p99_ms']} ms",
            verdict(poll["rps"] >= 3000),
        ),
        (
            "One worker, provider 10 s per task",
            "≥ 5,000 in flight, loop lag p99 < 50 ms, RSS < 500 MB",
            f"{fl['peak_at_provider']} in flight at the provider at once "
            f"({fl['concurrency']} steps at once), lag p99 ≤ {lag} ms, "
            f"RSS {fl['peak_rss_mb']} MB",
            verdict(fl["peak_at_provider"] >= 5000 and lag < 50 and fl["peak_rss_mb"] < 500),
        ),
        (
            "Gateway-added latency, with callbacks",
            "p50 < 20 ms",
            f"p50 {callbacks['p50_ms']} ms",
            verdict(callbacks["p50_ms"] < 20),
        ),
        (
            "Peer, same run: LiteLLM proxy vs mediagate submit (1 process each)",
            "side by side",
            f"LiteLLM {peer['litellm']['rps']} req/s (p99 {peer['litellm']['p99_ms']} ms), "
            f"mediagate {peer['mediagate']['rps']} req/s (p99 {peer['mediagate']['p99_ms']} ms):"
            f" {peer['rps_ratio_mediagate_over_litellm']}×",
            "—",
        ),
    ]
    target_table = "\n".join(
        ["| what | target | measured | |", "|---|---|---|---|"]
        + [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    )
    tables = {name: (RESULTS / f"{name}.md").read_text() for name in r}
    return TEMPLATE.format(
        when=r["api"].get("when", time.strftime("%Y-%m-%d")),
        machine=f"{platform.machine()}, {_cpus()} CPUs, Python {platform.python_version()}",
        seconds=round(seconds),
        targets=target_table,
        api=tables["api"],
        inflight=tables["inflight"],
        latency=tables["latency"],
        peer=tables["peer"],
    )


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main(sys.argv[1:])
