from mediagate.core.migrate import check
from mediagate.core.settings import Settings


def test_models_and_migrations_agree(settings: Settings) -> None:
    check(settings)  # alembic check: raises if an autogenerate would produce anything
