"""Engine, ORM base and the unit of work.

One unit of work per request or runner step: `async with db.write() as session:` commits once
at the end (or rolls back); services never commit. On SQLite, write units start with
`BEGIN IMMEDIATE` so concurrent writers queue on the database lock instead of failing
at commit; read units use a plain deferred transaction and, under WAL, never block.
"""

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import threading
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, MetaData, Table, event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

from mediagate.core.settings import Settings
from mediagate.core.sqlite_inline import InlineConnection, inline_creator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SQLITE_BUSY_TIMEOUT_MS = 30_000
_WRITE = "mediagate_write"
DIRECT_WRITE = "mediagate.direct_write"
"""session.info key: the sqlite3 connection a write unit's transaction is open on, for
statements that run straight on it (core/prepared.py)."""


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def table_of(model: type[Base]) -> Table:
    """A model's Core table, for prebuilt statements on hot paths (no unit of work)."""
    return Base.metadata.tables[model.__tablename__]


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Database:
    """Owns the engine; hands out read and write units of work."""

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        pool_size: int = 10,
        max_overflow: int = 10,
        sqlite_inline: bool = True,
    ) -> None:
        self.url = url
        self.engine: AsyncEngine = _create_engine(
            url,
            echo=echo,
            pool_size=pool_size,
            max_overflow=max_overflow,
            sqlite_inline=sqlite_inline,
        )
        self._gate = SqliteWriteGate(url) if url.startswith("sqlite") else None
        on_disk = url.startswith("sqlite") and sqlite_path(url) not in ("", ":memory:")
        self._writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SqliteWriter] = (
            weakref.WeakKeyDictionary()
        )
        self._direct_writes = on_disk and sqlite_inline
        self._echo = echo
        self._reader_path = sqlite_path(url) if on_disk and sqlite_inline else None
        self._reader: sqlite3.Connection | None = None
        self._checkpointer = (
            SqliteCheckpointer(sqlite_path(url)) if on_disk and sqlite_inline else None
        )
        self._reads = async_sessionmaker(self.engine, expire_on_commit=False)
        self._writes = async_sessionmaker(
            self.engine.execution_options(**{_WRITE: True}), expire_on_commit=False
        )

    @classmethod
    def for_settings(cls, settings: Settings) -> "Database":
        return cls(
            settings.db_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            sqlite_inline=settings.sqlite_inline,
        )

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A unit of work that may write: commits on success, rolls back on error."""
        if self._gate is None:
            async with self._writes() as session, session.begin():
                yield session
            return
        async with self._gate.hold():
            if self._direct_writes:
                async with self._writer().unit() as session:
                    yield session
                return
            async with self._writes() as session, session.begin():
                yield session

    def _writer(self) -> "SqliteWriter":
        loop = asyncio.get_running_loop()
        writer = self._writers.get(loop)
        if writer is None:
            writer = self._writers[loop] = SqliteWriter.open(sqlite_path(self.url), self._echo)
        return writer

    @property
    def write_engine(self) -> AsyncEngine:
        """The engine write units run on (tests listen to its statements)."""
        return self._writer().engine if self._direct_writes else self.engine

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A read-only unit of work."""
        async with self._reads() as session, session.begin():
            yield session

    def sqlite_reader(self) -> sqlite3.Connection | None:
        """On the inline SQLite driver, one autocommit connection for reads that are a
        single statement (core/prepared.py `one`): each SELECT is its own snapshot, and
        as inline calls never yield, the event loop's requests take turns on it without a
        pool or a transaction. None elsewhere."""
        if self._reader is None and self._reader_path is not None:
            reader = sqlite3.connect(
                self._reader_path,
                isolation_level=None,
                check_same_thread=False,
                timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
            )
            reader.execute("PRAGMA query_only=ON")
            self._reader = reader
        return self._reader

    async def dispose(self) -> None:
        for writer in list(self._writers.values()):
            await writer.engine.dispose()
        self._writers.clear()
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.stop)
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        await self.engine.dispose()
        if self._gate is not None:
            self._gate.close()


def _create_engine(
    url: str, *, echo: bool, pool_size: int, max_overflow: int, sqlite_inline: bool
) -> AsyncEngine:
    if url.startswith("sqlite"):
        ensure_sqlite_dir(url)
        timeout_s = SQLITE_BUSY_TIMEOUT_MS / 1000
        options: dict[str, Any] = (
            {"async_creator": inline_creator(sqlite_path(url), timeout_s)}
            if sqlite_inline
            else {"connect_args": {"timeout": timeout_s}}
        )
        engine = create_async_engine(url, echo=echo, pool_size=8, max_overflow=8, **options)
        _install_sqlite_hooks(engine)
        return engine
    # Each process holds at most pool_size + max_overflow connections (plus one LISTEN):
    # size them so every replica and worker together stay under max_connections.
    #
    # No pool_pre_ping: on asyncpg it is BEGIN, a ping and ROLLBACK, three round trips on
    # every checkout (of a submit's ten, issue 18). Instead a checkout hands out only a
    # connection whose socket asyncpg still has open (no round trip: a server that went
    # away, restarted or terminated the backend has closed it, and asyncpg has seen
    # that), connections are recycled after PG_POOL_RECYCLE_S, and a connection that
    # fails mid-unit is invalidated by SQLAlchemy (that unit fails, the next one connects
    # afresh).
    engine = create_async_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_recycle=PG_POOL_RECYCLE_S,
    )
    event.listen(engine.sync_engine, "checkout", _refuse_closed)
    return engine


PG_POOL_RECYCLE_S = 1800


def _refuse_closed(_dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    """Pool checkout: a connection whose socket is closed is replaced, not handed out."""
    driver = record.driver_connection
    if driver is not None and driver.is_closed():
        raise DisconnectionError("connection closed by the server")


class SqliteWriter:
    """The one connection a process's write units run on (per event loop), on the inline
    driver. Writers take turns on the write gate anyway, so one connection is enough, and
    holding it lets a write unit skip SQLAlchemy's per-unit work: no pool checkout, no
    greenlet hops for BEGIN and COMMIT (about 0.3 ms of CPU a unit, most of a claim or a
    runner write-back). The unit's transaction is opened here; prepared statements
    (core/prepared.py) run straight on it, and ORM work, when a unit does any, goes through
    a session on this same connection (an engine with a StaticPool of it), in the same
    transaction, which the session then commits."""

    def __init__(self, connection: InlineConnection, engine: AsyncEngine) -> None:
        self.connection = connection
        self.engine = engine
        self._connected = False
        self.sessions = async_sessionmaker(
            engine.execution_options(**{_WRITE: True}), expire_on_commit=False
        )

    @classmethod
    def open(cls, path: str, echo: bool) -> "SqliteWriter":
        raw = sqlite3.connect(
            path,
            timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
            check_same_thread=False,
            isolation_level=None,  # BEGIN is ours to send
        )
        for pragma in SQLITE_PRAGMAS:
            raw.execute(pragma)
        connection = InlineConnection(raw)

        async def same() -> InlineConnection:
            return connection

        engine = create_async_engine(
            f"sqlite+aiosqlite:///{path}", echo=echo, poolclass=StaticPool, async_creator=same
        )
        _install_sqlite_hooks(engine, configure=False)  # configured above
        return cls(connection, engine)

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[AsyncSession]:
        if not self._connected:
            # SQLAlchemy's first connect initialises the dialect and then rolls back:
            # inside the unit it would undo what the unit wrote so far.
            async with self.engine.connect():
                pass
            self._connected = True
        raw = self.connection.sqlite
        raw.execute("BEGIN IMMEDIATE")
        session = self.sessions()
        session.info[DIRECT_WRITE] = raw
        try:
            yield session
            if session.in_transaction():  # the ORM did something (even just session.add)
                await session.commit()  # flushes the ORM's part; commits the one transaction
            else:
                raw.commit()
        except BaseException:
            if session.in_transaction():
                await session.rollback()
            if raw.in_transaction:
                raw.rollback()
            raise
        finally:
            await session.close()


class SqliteCheckpointer:
    """Copies SQLite's write-ahead log back into the database from a thread of its own.

    Left to SQLite, the commit that fills the log to 1,000 pages runs the checkpoint
    itself, fsync included, while it holds the write lock: every writer waits for the
    disk, and that request's latency jumps. Here a thread checkpoints (PASSIVE: it never
    waits for readers or writers) every `interval_s`, its own connection releasing the GIL
    while SQLite works; writers' connections only checkpoint past `BACKSTOP_PAGES`. Small
    and often is better: under the submit benchmark, checkpoints every 1 s left p99 at
    about 66 ms, every 0.1 s at 33-62 ms."""

    BACKSTOP_PAGES = 20_000

    def __init__(self, path: str, interval_s: float = 0.1) -> None:
        self.path = path
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite checkpoints", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            while not self._stop.wait(self.interval_s):
                with contextlib.suppress(sqlite3.OperationalError):  # busy: next time
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            connection.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class SqliteWriteGate:
    """One SQLite writer at a time, across coroutines and processes, handed over at once.

    SQLite's own lock makes a waiting writer sleep and retry (1, 2, 5 … 100 ms), which
    under load turns into seconds of latency. So writers queue here first: an asyncio
    lock inside the process, then an flock on a file beside the database across processes
    (the kernel wakes the next waiter the moment the lock is released). BEGIN IMMEDIATE
    then finds the database free; its busy timeout only matters for outside writers.
    """

    def __init__(self, url: str) -> None:
        ensure_sqlite_dir(url)
        self.path = sqlite_path(url) + ".write-lock"
        self._fd: int | None = None
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        lock = self._locks.setdefault(loop, asyncio.Lock())
        async with lock:
            fd = self._file()
            await self._flock(fd)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _file(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        return self._fd

    @staticmethod
    async def _flock(fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass  # another process is writing: wait for it in a thread
        waiting = asyncio.ensure_future(asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX))
        try:
            await asyncio.shield(waiting)
        except asyncio.CancelledError:
            # The thread will still get the lock; give it back as soon as it does.
            waiting.add_done_callback(
                lambda f: None if f.cancelled() or f.exception() else fcntl.flock(fd, fcntl.LOCK_UN)
            )
            raise


def sqlite_path(url: str) -> str:
    return url.split("///", 1)[-1]


def ensure_sqlite_dir(url: str) -> None:
    path = sqlite_path(url)
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    f"PRAGMA wal_autocheckpoint={SqliteCheckpointer.BACKSTOP_PAGES}",
    "PRAGMA foreign_keys=ON",
    f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
)


def _install_sqlite_hooks(engine: AsyncEngine, *, configure: bool = True) -> None:
    if configure:

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy emit BEGIN itself (below) instead of the driver's implicit BEGIN.
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            for pragma in SQLITE_PRAGMAS:
                cursor.execute(pragma)
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        begin = "BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE, False) else "BEGIN"
        driver = conn.connection.driver_connection
        if isinstance(driver, InlineConnection):
            if not driver.sqlite.in_transaction:  # else SqliteWriter.unit opened it
                driver.sqlite.execute(begin)  # what exec_driver_sql runs, minus its overhead
        else:
            conn.exec_driver_sql(begin)
