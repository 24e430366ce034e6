"""Alembic, driven from code: `mediagate migrate`, `serve` start, and the tests."""

from pathlib import Path

from alembic import command
from alembic.config import Config

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


def check(settings: Settings) -> None:
    """Raise if the ORM models and the migrations disagree (alembic check)."""
    command.check(alembic_config(settings))
