"""Statements on the hottest paths, compiled once and run straight on the driver.

`session.execute` builds an execution context, fires events and wraps a result on every
call: about 0.1 ms of Python, several times what SQLite itself spends on a one-row insert
or update. Accepting a task runs four such statements, and that overhead was most of the
request. A `Prepared` statement is still one ordinary Core statement for both databases;
on the inline SQLite driver (core/sqlite_inline.py) it is compiled once, parameters and
results go through the column types' own processors, and it runs on the sqlite3
connection of the session's transaction (`run`) or, for a one-statement read, on the
database's reader connection without any session (`one`). Everywhere else (PostgreSQL,
aiosqlite) it simply goes through `session.execute`.

Only for statements that name every value they write: SQLAlchemy's Python-side column
defaults are not applied on the direct path.
"""

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.elements import BindParameter

from mediagate.core.db import DIRECT_WRITE, Database
from mediagate.core.sqlite_inline import InlineConnection

_DRIVER = "mediagate.sqlite_connection"


@dataclass(frozen=True)
class Outcome:
    rowcount: int
    rows: list[tuple[Any, ...]]
    """The rows returned (RETURNING or SELECT)."""

    @property
    def row(self) -> tuple[Any, ...] | None:
        """The first row, if any."""
        return self.rows[0] if self.rows else None


@dataclass(frozen=True)
class _Compiled:
    sql: str
    binds: list[tuple[str, Callable[[Any], Any] | None]]
    """Each positional parameter's name and its type's bind processor."""
    fixed: dict[str, Any]
    """Values the statement carries itself (the 1 of `column + 1`)."""
    results: list[Callable[[Any], Any] | None]
    """Each returned column's result processor."""


class Prepared:
    def __init__(
        self, statement: UpdateBase | Select[Any], columns: Sequence[str] | None = None
    ) -> None:
        """`columns`: for an INSERT without `.values()`, the columns every call gives."""
        self.statement = statement
        self.columns = list(columns) if columns is not None else None
        self._compiled: dict[str, _Compiled] = {}

    async def run(self, session: AsyncSession, params: Mapping[str, Any]) -> Outcome:
        """Run it in the session's unit of work."""
        connection = await _sqlite_connection(session)
        if connection is not None:
            return _run_direct(connection, self._compile(session.get_bind().dialect), params)
        result = await session.execute(self.statement, dict(params))
        rows = [tuple(r) for r in result] if len(self.statement.exported_columns) else []
        count: int = result.rowcount  # type: ignore[attr-defined]
        return Outcome(count, rows)

    async def one(self, db: Database, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The first row of a read that stands alone (one statement, its own snapshot)."""
        reader = db.sqlite_reader()
        if reader is not None:
            return _run_direct(reader, self._compile(db.engine.dialect), params).row
        async with db.read() as session:
            return (await self.run(session, params)).row

    def _compile(self, dialect: Dialect) -> _Compiled:
        """Compiled once per dialect (positional parameters: SQLite's qmark style)."""
        if dialect.name not in self._compiled:
            compiled = self.statement.compile(dialect=dialect, column_keys=self.columns)
            order = compiled.positiontup
            assert order is not None, "a positional paramstyle is expected"
            self._compiled[dialect.name] = _Compiled(
                compiled.string,
                [(name, _bind_processor(compiled.binds[name], dialect)) for name in order],
                {n: b.effective_value for n, b in compiled.binds.items() if not b.required},
                [
                    column.type.dialect_impl(dialect).result_processor(dialect, None)
                    for column in self.statement.exported_columns
                ],
            )
        return self._compiled[dialect.name]


def _bind_processor(bind: BindParameter[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    return bind.type.dialect_impl(dialect).bind_processor(dialect)


def _run_direct(
    connection: sqlite3.Connection, compiled: _Compiled, params: Mapping[str, Any]
) -> Outcome:
    given = {**compiled.fixed, **params} if compiled.fixed else params
    values = [
        process(given[name]) if process is not None else given[name]
        for name, process in compiled.binds
    ]
    try:
        cursor = connection.execute(compiled.sql, values)
        rows = cursor.fetchall() if cursor.description else []
    except sqlite3.Error as exc:
        raise DBAPIError.instance(compiled.sql, values, exc, sqlite3.Error) from exc
    if rows and any(compiled.results):
        rows = [
            tuple(
                process(value) if process is not None else value
                for process, value in zip(compiled.results, row, strict=True)
            )
            for row in rows
        ]
    return Outcome(cursor.rowcount, rows)


async def _sqlite_connection(session: AsyncSession) -> sqlite3.Connection | None:
    """The sqlite3 connection under this session's transaction, on the inline driver
    (a write unit's own, or looked up once per transaction)."""
    direct: sqlite3.Connection | None = session.info.get(DIRECT_WRITE)
    if direct is not None:
        return direct
    transaction = session.sync_session.get_transaction()
    cached = session.info.get(_DRIVER)
    if cached is None or cached[0] is not transaction:
        connection = await session.connection()
        driver = (await connection.get_raw_connection()).driver_connection
        found = driver.sqlite if isinstance(driver, InlineConnection) else None
        cached = session.info[_DRIVER] = (session.sync_session.get_transaction(), found)
    connection_: sqlite3.Connection | None = cached[1]
    return connection_
