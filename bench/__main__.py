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

from bench import api, cli_startup, floor, inflight, latency, peer, waiting
from bench.harness import RESULTS, answers, spread, write

DOCS = Path(__file__).parent.parent / "docs" / "performance.md"
TEMPLATE = (Path(__file__).parent / "performance.template.md").read_text()

BENCHMARKS: dict[str, tuple[Callable[[], dict[str, Any]], Callable[[dict[str, Any]], str]]] = {
    "floor": (floor.run, floor.table),  # first, right before the rows read against it
    "api": (api.run, api.table),
    "inflight": (lambda: inflight.run_all(limit_s=120.0), inflight.table),
    "latency": (latency.run, latency.table),
    "peer": (peer.run, peer.table),
    "waiting": (waiting.run_all, waiting.table),
    "cli_startup": (cli_startup.run, cli_startup.table),
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


def verdict(met: bool, *rows: dict[str, Any]) -> str:
    """met only if the figures meet the target and every row behind them saw nothing but
    2xx answers."""
    if not all(r.get("clean", False) for r in rows):
        return "**missed** (non-2xx answers or errors: " + "; ".join(answers(r) for r in rows) + ")"
    return "met" if met else "**missed**"


def of_floor(value: float, base: dict[str, Any]) -> str:
    """`value` as a share of a floor row's median throughput."""
    return f"{value / base['rps']:.2f}×" if base.get("rps") else "—"


def summary(r: dict[str, dict[str, Any]], seconds: float) -> str:
    submit = r["api"]["submit"]
    sqlite1, sqlite2 = submit["sqlite/1"], submit["sqlite/2"]
    poll1, poll2 = r["api"]["poll"]["sqlite/1"], r["api"]["poll"]["sqlite/2"]
    bare, insert = r["floor"]["bare"], r["floor"]["insert"]
    fl = inflight.best(r["inflight"])
    peer = r["peer"]
    callbacks = next(m for m in r["latency"]["modes"] if m["mode"] == "callbacks")
    lag = fl["loop_lag_p99_ms_at_most"] or 0.0
    rows = [
        (
            "Submit, SQLite, 1 server process",
            "≥ 60 % of the insert floor",
            "0.60× insert floor",
            f"{spread(sqlite1)} req/s, p99 {sqlite1['p99_ms']} ms",
            of_floor(sqlite1["rps"], insert),
            verdict(sqlite1["rps"] >= 0.6 * insert["rps"], sqlite1, insert),
        ),
        (
            "Submit, SQLite, 2 server processes",
            "≥ 1,000 req/s, p99 < 50 ms",
            of_floor(1000, insert) + " insert floor",
            f"{spread(sqlite2)} req/s, p99 {sqlite2['p99_ms']} ms",
            of_floor(sqlite2["rps"], insert),
            verdict(sqlite2["rps"] >= 1000 and sqlite2["p99_ms"] < 50, sqlite2),
        ),
        (
            "Poll, 1 server process (half completed, half in progress)",
            "side by side with the bare floor",
            "—",
            f"{spread(poll1)} req/s, p99 {poll1['p99_ms']} ms",
            of_floor(poll1["rps"], bare),
            "—",
        ),
        (
            "Poll, 2 server processes",
            "≥ 3,000 req/s",
            of_floor(3000, bare) + " bare floor",
            f"{spread(poll2)} req/s, p99 {poll2['p99_ms']} ms",
            of_floor(poll2["rps"], bare),
            verdict(poll2["rps"] >= 3000, poll2),
        ),
        (
            "One worker, provider 10 s per task",
            "≥ 5,000 in flight, loop lag p99 < 50 ms, RSS < 500 MB",
            "—",
            f"{fl['peak_at_provider']} in flight at the provider at once "
            f"({fl['concurrency']} steps at once), lag p99 ≤ {lag} ms, "
            f"RSS {fl['peak_rss_mb']} MB",
            "—",
            verdict(fl["peak_at_provider"] >= 5000 and lag < 50 and fl["peak_rss_mb"] < 500)
            if fl.get("submit", {}).get("clean", True)
            else verdict(False, fl["submit"]),
        ),
        (
            "Gateway-added latency, with callbacks",
            "p50 < 20 ms",
            "—",
            f"p50 {callbacks['p50_ms']} ms",
            "—",
            "met" if callbacks["p50_ms"] < 20 else "**missed**",
        ),
        (
            "Peer, same run: LiteLLM proxy vs mediagate submit (1 process each)",
            "side by side",
            "—",
            f"LiteLLM {spread(peer['litellm'])} req/s (p99 {peer['litellm']['p99_ms']} ms), "
            f"mediagate {spread(peer['mediagate'])} req/s "
            f"(p99 {peer['mediagate']['p99_ms']} ms): {peer['rps_ratio_mediagate_over_litellm']}×",
            "—",
            "—",
        ),
    ]
    target_table = "\n".join(
        [
            "| what | target | target as a share of this run's floor | measured, median (range)"
            " | share of the floor | |",
            "|---|---|---|---|---|---|",
        ]
        + ["| " + " | ".join(row) + " |" for row in rows]
    )
    tables = {name: (RESULTS / f"{name}.md").read_text() for name in r}
    return TEMPLATE.format(
        when=r["api"].get("when", time.strftime("%Y-%m-%d")),
        machine=f"{platform.machine()}, {_cpus()} CPUs, Python {platform.python_version()}",
        seconds=round(seconds),
        runs=r["api"].get("runs_per_row", 3),
        targets=target_table,
        settings=api.settings_table(r["api"]),
        floor=tables["floor"],
        api=tables["api"],
        inflight=tables["inflight"],
        latency=tables["latency"],
        peer=tables["peer"],
        cli=tables["cli_startup"],
        waiting=tables["waiting"],
    )


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main(sys.argv[1:])
