"""Scratch left behind by a killed worker is removed when a runner starts, once no running
step can still be using it; what a live step may be writing is left alone."""

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

from mediagate.app import build_runner, create_app
from mediagate.core.migrate import upgrade
from mediagate.core.settings import Settings
from mediagate.runner.scratch import stale_after_s, sweep_stale


def touch(path: Path, age_s: float, data: bytes = b"partial mp4") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(data)
    when = time.time() - age_s
    os.utime(path, (when, when))
    return path


def test_only_entries_untouched_for_longer_than_the_limit_are_removed(tmp_path: Path) -> None:
    root = tmp_path / "scratch"
    touch(root / "result-dead" / "result", 120)
    touch(root / "result-dead", 120)
    touch(root / "result-live" / "result", 5)  # a download still writing
    touch(root / "result-live", 120)  # its folder was made long ago
    touch(root / "loose", 120)
    (root / "result-empty").mkdir()
    touch(root / "result-empty", 120)
    assert sweep_stale(root, 60) == 3
    assert sorted(p.name for p in root.iterdir()) == ["result-live"]
    assert (root / "result-live" / "result").read_bytes() == b"partial mp4"


def test_nothing_to_sweep(tmp_path: Path) -> None:
    assert sweep_stale(tmp_path / "absent", 60) == 0
    touch(tmp_path / "scratch" / "result-new" / "result", 0)
    assert sweep_stale(tmp_path / "scratch", 60) == 0
    assert (tmp_path / "scratch" / "result-new" / "result").exists()


def test_the_limit_covers_both_the_download_and_the_step(
    make_settings: Callable[..., Settings],
) -> None:
    assert stale_after_s(make_settings(result_download_timeout_s=900, step_timeout_s=60)) == 900
    assert stale_after_s(make_settings(result_download_timeout_s=30, step_timeout_s=120)) == 120


async def test_a_starting_runner_sweeps_what_a_killed_worker_left(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(result_download_timeout_s=30, step_timeout_s=30)
    await asyncio.to_thread(upgrade, settings)
    scratch = settings.data_dir / "scratch"
    dead = touch(scratch / "result-killed" / "result", 31)
    touch(dead.parent, 31)
    live = touch(scratch / "result-running" / "result", 1)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        core = app.state.core
        runner = build_runner(core.db, core.settings, core.catalog, app.state.components)
        running = asyncio.create_task(runner.run())
        try:
            async with asyncio.timeout(10):
                while dead.parent.exists():
                    await asyncio.sleep(0.02)
        finally:
            await runner.stop()
            await running
    assert live.read_bytes() == b"partial mp4"
    assert sorted(p.name for p in scratch.iterdir()) == ["result-running"]
