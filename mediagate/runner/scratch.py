"""Scratch space: where results wait between their download and storage, on the data disk
(not /tmp, which may be a small RAM disk). A store step cleans up after itself; a worker
killed in the middle of one cannot, so a runner starting up removes what no live step can
still be using: entries untouched for longer than any step may run."""

import logging
import os
import shutil
import time
from pathlib import Path

from mediagate.core.settings import Settings

log = logging.getLogger("mediagate.runner")


def scratch_dir(settings: Settings) -> Path:
    path = settings.data_dir / "scratch"
    path.mkdir(parents=True, exist_ok=True)
    return path


def stale_after_s(settings: Settings) -> float:
    """A download gives up after MEDIAGATE_RESULT_DOWNLOAD_TIMEOUT_S and the whole step
    (download, probe, move to storage) after MEDIAGATE_STEP_TIMEOUT_S: an entry left
    alone for longer than both belongs to no running step, in this process or another
    sharing the data directory."""
    return max(settings.result_download_timeout_s, settings.step_timeout_s)


def _last_touched(entry: Path) -> float:
    """The newest modification time of `entry` and everything under it."""
    newest = entry.lstat().st_mtime
    if entry.is_dir() and not entry.is_symlink():
        for parent, dirs, files in os.walk(entry):
            for name in (*dirs, *files):
                newest = max(newest, (Path(parent) / name).lstat().st_mtime)
    return newest


def sweep_stale(root: Path, older_than_s: float, *, now: float | None = None) -> int:
    """Remove the entries of `root` untouched for more than `older_than_s`; how many.
    Entries that vanish meanwhile (their step finished, another runner swept them), or
    that cannot be removed, are skipped: a runner starts regardless."""
    if not root.is_dir():
        return 0
    now = time.time() if now is None else now
    removed = 0
    for entry in root.iterdir():
        try:
            if now - _last_touched(entry) <= older_than_s:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:  # not ours to remove (permissions): leave it, say so
            log.warning("could not remove stale scratch entry %s: %s", entry, exc)
            continue
        removed += 1
    return removed


def sweep_scratch(settings: Settings) -> int:
    """Run at a runner's start: the scratch left by killed workers; how many entries."""
    removed = sweep_stale(scratch_dir(settings), stale_after_s(settings))
    if removed:
        log.info("removed %d stale scratch entries (left by a stopped worker)", removed)
    return removed
