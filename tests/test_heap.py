"""A `mediagate serve` process takes its start-up heap out of the garbage collector's
scans (core/heap.py); an app built for tests or tools leaves the collector alone."""

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import asyncio, gc, sys
from mediagate.app import create_app
from mediagate.core.migrate import upgrade
from mediagate.core.settings import Settings

settings = Settings(data_dir=sys.argv[1], secret_key="k", embedded_runner=False)
upgrade(settings)
app = create_app(settings, server_process=sys.argv[2] == "serve")

async def main():
    async with app.router.lifespan_context(app):
        print(gc.get_freeze_count())

asyncio.run(main())
"""


def frozen_after_start(tmp_path: Path, kind: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / kind), kind],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return int(done.stdout.split()[-1])


def test_a_server_process_freezes_its_startup_heap(tmp_path: Path) -> None:
    assert frozen_after_start(tmp_path, "serve") > 10_000  # the app, libraries, metadata
    assert frozen_after_start(tmp_path, "tool") == 0
