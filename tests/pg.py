"""PostgreSQL for the tests: a migrated template, cloned per test (fast: no migrations)."""

import asyncio
import os
import secrets

import asyncpg

from mediagate.core.migrate import upgrade
from mediagate.core.settings import Settings

ADMIN_URL = os.environ.get(
    "MEDIAGATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def url(name: str) -> str:
    base = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}"


def _run(sql: str) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(go())


def reachable() -> bool:
    try:
        _run("SELECT 1")
    except (OSError, asyncpg.PostgresError):
        return False
    return True


def create_template() -> str:
    name = f"mg_template_{secrets.token_hex(4)}"
    _run(f'CREATE DATABASE "{name}"')
    upgrade(Settings(database_url=url(name), secret_key="test"))
    return name


def clone(template: str) -> str:
    name = f"mg_test_{secrets.token_hex(6)}"
    _run(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return name


def drop(name: str) -> None:
    _run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
