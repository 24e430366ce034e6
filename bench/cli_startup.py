"""How long the server command line takes to answer: `mediagate --help` (parses and exits)
and `mediagate keys list` (settings, one SQLite read) in fresh processes, as an operator
runs them. Median and range of several runs, wall time and the process's CPU.

`python -m bench.cli_startup` prints the table; `make bench` includes it.
"""

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RUNS = 7
COMMANDS = {"help": ["--help"], "keys list": ["keys", "list"]}
TARGET_S = 1.0
"""The issue's "well under a second" for --help and simple commands."""


def _once(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "mediagate", *args], env=env, check=True, capture_output=True
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mg-cli-") as data:
        env = {**os.environ, "MEDIAGATE_DATA_DIR": data, "MEDIAGATE_SECRET_KEY": "bench"}
        env.pop("MEDIAGATE_DATABASE_URL", None)  # the embedded default: SQLite
        subprocess.run([sys.executable, "-m", "mediagate", "migrate"], env=env, check=True)
        subprocess.run(
            [sys.executable, "-m", "mediagate", "keys", "create", "--account", "bench"],
            env=env,
            check=True,
            capture_output=True,
        )
        results: dict[str, Any] = {}
        for name, args in COMMANDS.items():
            _once(args, env)  # warm the file cache
            samples = [_once(args, env) for _ in range(RUNS)]
            walls = [w for w, _ in samples]
            cpus = [c for _, c in samples]
            results[name] = {
                "wall_s": round(statistics.median(walls), 3),
                "wall_range_s": [round(min(walls), 3), round(max(walls), 3)],
                "cpu_s": round(statistics.median(cpus), 3),
                "met": statistics.median(walls) < TARGET_S,
            }
    return results


def table(results: dict[str, Any]) -> str:
    lines = [
        f"| command | wall, median of {RUNS} (range) | CPU | under {TARGET_S:.0f} s |",
        "|---|---|---|---|",
    ]
    for name, r in results.items():
        low, high = r["wall_range_s"]
        lines.append(
            f"| `mediagate {name}` | {r['wall_s']:.2f} s ({low:.2f}–{high:.2f}) | "
            f"{r['cpu_s']:.2f} s | {'met' if r['met'] else '**missed**'} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    print(table(run()))
