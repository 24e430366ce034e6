"""Alembic, driven from code: `mediagate migrate`, `serve` start, and the tests."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from mediagate.core.db import ensure_sqlite_dir
from mediagate.core.settings import Settings

SCRIPTS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.set_main_option("sqlalchemy.url", settings.db_url.replace("%", "%%"))
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    if settings.db_url.startswith("sqlite"):
        ensure_sqlite_dir(settings.db_url)
    command.upgrade(alembic_config(settings), revision)


def head_revisions(settings: Settings) -> set[str]:
    """The revisions a current database is at (from the migration scripts)."""
    return set(ScriptDirectory.from_config(alembic_config(settings)).get_heads())


def current_revisions(connection: Connection) -> set[str]:
    """The revisions this database is at."""
    return set(MigrationContext.configure(connection).get_current_heads())


def check(settings: Settings) -> None:
    """Raise if the ORM models and the migrations disagree (alembic check)."""
    command.check(alembic_config(settings))
