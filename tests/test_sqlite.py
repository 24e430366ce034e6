"""SQLite specifics in core/db.py: the background checkpointer and the writers' settings."""

import asyncio
import sqlite3
import threading

import pytest
from sqlalchemy import text

from mediagate.core.db import Database, SqliteCheckpointer, sqlite_path
from mediagate.core.settings import Settings


@pytest.fixture
def sqlite_only(request: pytest.FixtureRequest) -> None:
    if request.config.getoption("--db") != "sqlite":
        pytest.skip("SQLite's write-ahead log")


def wal_frames(path: str) -> tuple[int, int]:
    """(frames in the log, frames already copied into the database)."""
    with sqlite3.connect(path) as connection:
        _, log, copied = connection.execute("PRAGMA wal_checkpoint(NOOP)").fetchone()
    return log, copied


async def test_the_log_is_copied_back_by_the_checkpoint_thread_not_by_writers(
    sqlite_only: None, settings: Settings
) -> None:
    db = Database(settings.db_url)
    path = sqlite_path(settings.db_url)
    try:
        async with db.write() as session:
            autocheckpoint = (await session.execute(text("PRAGMA wal_autocheckpoint"))).scalar()
            await session.execute(text("CREATE TABLE filler (x TEXT)"))
            for _ in range(200):
                await session.execute(text("INSERT INTO filler VALUES (:x)"), {"x": "y" * 2000})
        assert autocheckpoint == SqliteCheckpointer.BACKSTOP_PAGES
        for _ in range(100):  # the thread checkpoints every 0.1 s
            log, copied = wal_frames(path)
            if log and copied == log:
                break
            await asyncio.sleep(0.05)
        assert log > 0 and copied == log
    finally:
        await db.dispose()
    assert not any(t.name == "sqlite checkpoints" for t in threading.enumerate())


async def test_no_thread_or_reader_for_postgresql() -> None:
    db = Database("postgresql+asyncpg://postgres@127.0.0.1/unused")
    assert db._checkpointer is None and db.sqlite_reader() is None
    await db.dispose()
