"""Each test gets its own data directory and SQLite file, migrated with the real migrations."""

import inspect
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx2
import pytest

from mediagate.app import create_app
from mediagate.core.db import Database
from mediagate.core.migrate import upgrade
from mediagate.core.settings import Settings
from tests import pg
from tests.factories import KeyFactory
from tests.mail.inbox import Inbox, serve_inbox
from tests.servers import ImageServer, image_server


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> None:
    """Run every `async def` test on asyncio, without a marker on each."""
    if collector.funcnamefilter(name) and inspect.iscoroutinefunction(obj):  # type: ignore[attr-defined]
        pytest.mark.anyio(obj)


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    """A real SMTP server (aiosmtpd) on loopback, and what it received."""
    with serve_inbox() as box:
        yield box


@pytest.fixture(scope="session")
def images() -> Iterator[ImageServer]:
    """A real image server on loopback, shared by the session."""
    with image_server() as server:
        yield server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        choices=("sqlite", "postgresql"),
        default=os.environ.get("MEDIAGATE_TEST_DB", "sqlite"),
        help="database the suite runs against (PostgreSQL: one database per test)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the PostgreSQL leg, run only the tests that reach a database.

    A test that never asks for a database (directly or through `settings`, `db`, `app`,
    a server's `module_database_url`) does the same work on both legs, so the SQLite leg
    has already run it.
    """
    if config.getoption("--db") != "postgresql":
        return
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        reaches = "postgres_template" in getattr(item, "fixturenames", ())
        (keep if reaches else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(scope="session")
def postgres_template(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """A migrated template database; each test gets a clone of it."""
    if request.config.getoption("--db") != "postgresql":
        yield None
        return
    if not pg.reachable():
        if os.environ.get("MEDIAGATE_REQUIRE_SERVICES") == "1":
            pytest.fail(f"PostgreSQL is required but not reachable at {pg.ADMIN_URL}")
        pytest.skip(f"PostgreSQL not reachable at {pg.ADMIN_URL}")
    name = pg.create_template()
    yield name
    pg.drop(name)


def _clone(template: str | None) -> Iterator[str | None]:
    """A database cloned from the template for as long as the fixture lives (SQLite: None)."""
    if template is None:
        yield None
        return
    name = pg.clone(template)
    yield pg.url(name)
    pg.drop(name)


@pytest.fixture(scope="module")
def module_database_url(postgres_template: str | None) -> Iterator[str | None]:
    """One database for a module's shared server process."""
    yield from _clone(postgres_template)


@pytest.fixture
def database_url(postgres_template: str | None) -> Iterator[str | None]:
    yield from _clone(postgres_template)


@pytest.fixture
def make_settings(
    tmp_path: Path, images: ImageServer, database_url: str | None
) -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "database_url": database_url,
            "data_dir": tmp_path / "data",
            "secret_key": "test-secret-key",
            "embedded_runner": False,
            "sandbox_latency_s": 0.0,
            "runner_poll_interval_s": 0.05,
            "rate_limit_per_s": 0,
            "fetch_allow_private_hosts": ["127.0.0.1", "localhost"],  # the tests' own servers
            "fetch_ports": [80, 443, images.server_address[1]],
            **overrides,
        }
        return Settings(**values)  # type: ignore[arg-type]

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Iterator[Settings]:
    s = make_settings()
    upgrade(s)
    return s


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.db_url)
    yield database
    await database.dispose()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[object]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: object) -> AsyncIterator[httpx2.AsyncClient]:
    transport = httpx2.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx2.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
        yield c


@pytest.fixture
def keys(db: Database, settings: Settings) -> KeyFactory:
    return KeyFactory(db, settings)
