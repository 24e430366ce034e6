"""One real `mediagate serve` (sandbox: test keys complete their tasks) for the client's
tests, on SQLite or, with --db=postgresql, on a database of its own."""

import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mgc_servers import Server

from tests import pg
from tests.e2e.procs import cli, create_key, environment, free_port, process, wait_for_http


def _database(config: pytest.Config) -> Iterator[str | None]:
    if config.getoption("--db", default="sqlite") != "postgresql":
        yield None
        return
    if not pg.reachable():
        pytest.skip(f"PostgreSQL not reachable at {pg.ADMIN_URL}")
    name = pg.create_template()  # a migrated database of its own
    yield pg.url(name)
    pg.drop(name)


@pytest.fixture(scope="session")
def server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("client-server")
    for database_url in _database(request.config):
        env = environment(
            folder / "data",
            database_url,
            sandbox_latency_s=0.3,
            rate_limit_per_s=0,
        )
        cli(env, "migrate")
        port = free_port()
        log = folder / "serve.log"
        with process(env, "serve", "--port", str(port), log=log) as proc:
            base = f"http://127.0.0.1:{port}"
            wait_for_http(base, proc, log)
            yield Server(base, env)


@pytest.fixture
def new_key(server: Server, request: pytest.FixtureRequest) -> Callable[..., str]:
    """A test key of a fresh account (its own task list), with `credits` test credits."""

    def make(credits: int = 100) -> str:
        # Unique (test names repeat across modules); letters, digits and ._@+- only.
        name = re.sub(r"[^\w.@+-]", "-", request.node.name[:40], flags=re.ASCII)
        account = f"{name}-{secrets.token_hex(4)}"
        return create_key(server.env, account=account, credits=credits)

    return make


@pytest.fixture
def key(new_key: Callable[..., str]) -> str:
    return new_key()


@pytest.fixture
def fox(tmp_path: Path) -> Path:
    from tests.servers import make_image

    path = tmp_path / "fox.png"
    path.write_bytes(make_image(640, 480))
    return path
