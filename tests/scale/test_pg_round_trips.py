"""Round trips of one submit on PostgreSQL, counted by a real proxy on the wire
(tests/pgwire.py): a count is deterministic where a time on a busy machine is not.

Issue 18's outside profile found 10 round trips per submit (pool pre-ping, BEGIN, four
statements, NOTIFY, COMMIT, ...) and the account row locked across most of them, so every
other submit of the account queued behind a transaction idle in our Python. Targets: at
most 6 round trips, the account row locked for at most one (the COMMIT's)."""

import asyncio
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

import asyncpg
import httpx2
import pytest

from mediagate.app import create_app
from mediagate.core.db import Database
from mediagate.core.settings import Settings
from mediagate.keys import service as key_service
from mediagate.keys.limits import parse_limits
from tests import pg
from tests.factories import KeyFactory, MadeKey, generation
from tests.pgwire import RoundTripProxy, Turn

URL = "/api/v1/images/generations"
WARM = 3
MEASURED = 10


@pytest.fixture
async def proxy(database_url: str | None) -> AsyncIterator[RoundTripProxy]:
    if database_url is None:
        pytest.skip("PostgreSQL only (run with --db=postgresql)")
    parts = urlsplit(database_url)
    wire = RoundTripProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await wire.start()
    yield wire
    await wire.stop()


@pytest.fixture
async def proxied(
    proxy: RoundTripProxy, database_url: str, make_settings: Callable[..., Settings]
) -> AsyncIterator[httpx2.AsyncClient]:
    parts = urlsplit(database_url)
    assert proxy._server is not None
    port = proxy._server.sockets[0].getsockname()[1]
    url = database_url.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{port}", 1)
    settings = make_settings(database_url=url)  # a clone of the migrated template
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://gw") as client:
            yield client


async def _submits(client: httpx2.AsyncClient, key: MadeKey, n: int, **headers: str) -> None:
    for i in range(n):
        extra = {"Idempotency-Key": f"{headers['idem']}-{i}"} if "idem" in headers else {}
        response = await client.post(
            URL, json=generation(prompt=f"fox {i}"), headers={**key.headers, **extra}
        )
        assert response.status_code == 200, response.text


def _per_submit(turns: list[Turn]) -> list[list[Turn]]:
    """The turns of each submit: from a BEGIN to its COMMIT, on one connection."""
    submits: list[list[Turn]] = []
    open_: dict[int, list[Turn]] = {}
    for turn in turns:
        text = " ".join(turn.statements)
        if text.startswith("BEGIN"):
            open_[turn.connection] = []
        if turn.connection in open_:
            open_[turn.connection].append(turn)
        if "COMMIT" in text and turn.connection in open_:
            submits.append(open_.pop(turn.connection))
    return submits


def _account_lock_turns(submit: list[Turn]) -> int:
    """Round trips from the statement that locks the account row to COMMIT, COMMIT's own
    included (1: the lock is held for the COMMIT round trip only)."""
    first = next(
        i for i, t in enumerate(submit) if any("UPDATE accounts" in s for s in t.statements)
    )
    return len(submit) - first - 1


@pytest.mark.parametrize(
    ("idempotent", "capped", "expected"),
    [(False, False, 3), (True, False, 4), (False, True, 4)],
    ids=["plain", "idempotency-key", "spending-caps"],
)
async def test_a_submit_takes_3_round_trips_and_locks_the_account_for_one(
    proxy: RoundTripProxy,
    proxied: httpx2.AsyncClient,
    keys: KeyFactory,
    db: Database,
    idempotent: bool,
    capped: bool,
    expected: int,
) -> None:
    """BEGIN, the one accepting statement, COMMIT; with an Idempotency-Key the replay
    lookup comes first, with spending caps the INSERT that makes their period rows exist
    (it locks no existing row)."""
    key = await keys(credits=1000)
    if capped:
        limits = parse_limits(known_models=(), day="100000", total="100000")
        async with db.write() as session:
            await key_service.set_limits(session, key.id, limits)
    headers = {"idem": "warm"} if idempotent else {}
    await _submits(proxied, key, WARM, **headers)  # statements prepared, key cached
    proxy.reset()
    headers = {"idem": "measured"} if idempotent else {}
    await _submits(proxied, key, MEASURED, **headers)
    turns = list(proxy.turns)
    submits = _per_submit(turns)
    assert len(submits) == MEASURED, [t.statements for t in turns]
    # Every turn on the wire belongs to a submit's transaction: no pre-ping, no NOTIFY
    # in between (the wake-up goes after the commit, batched: see tasks/announce.py).
    outside = len(turns) - sum(len(s) for s in submits)
    per_submit = {len(s) for s in submits}

    assert per_submit == {expected}, [[t.statements for t in s] for s in submits]
    assert outside <= MEASURED  # at most one NOTIFY a submit, after its commit
    assert {_account_lock_turns(s) for s in submits} == {1}


async def test_pooled_connections_the_server_dropped_are_replaced_without_a_ping(
    proxied: httpx2.AsyncClient, keys: KeyFactory, database_url: str
) -> None:
    """Without pool_pre_ping, a connection PostgreSQL terminated (a restart, an admin's
    pg_terminate_backend) must still never reach a request: the checkout sees its socket
    closed and connects afresh."""
    key = await keys(credits=1000)
    await asyncio.gather(*(_submits(proxied, key, 2) for _ in range(4)))  # a few pooled
    admin = await asyncpg.connect(pg.ADMIN_URL)
    try:
        name = urlsplit(database_url).path.lstrip("/")
        ended = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
    finally:
        await admin.close()
    assert ended >= 1
    await asyncio.sleep(0.1)  # the event loop reads each socket's end
    await _submits(proxied, key, 5)


async def test_new_task_hints_follow_the_commits_one_notify_at_a_time(
    proxy: RoundTripProxy, proxied: httpx2.AsyncClient, keys: KeyFactory
) -> None:
    """NOTIFY leaves the submit's transaction (runner/wakeups.py PgNotifier): it goes on a
    connection of its own after the commits, at most one per submit (fewer when commits
    land while one is on the wire; how many is timing), the last one after the last
    commit (so no task is left to the poll interval)."""
    key = await keys(credits=1000)
    await _submits(proxied, key, 1)
    proxy.reset()
    await asyncio.gather(*(_submits(proxied, key, 1) for _ in range(20)))

    def last(word: str) -> int:
        return max(
            (i for i, t in enumerate(proxy.turns) if any(word in s for s in t.statements)),
            default=-1,
        )

    async with asyncio.timeout(10):  # a liveness bound, not a speed claim
        while last("NOTIFY") < last("COMMIT"):
            await asyncio.sleep(0.01)
    notifies = [t for t in proxy.turns if any("NOTIFY" in s for s in t.statements)]
    commits = [t for t in proxy.turns if any("COMMIT" in s for s in t.statements)]
    assert len(commits) == 20
    assert 1 <= len(notifies) <= len(commits)
    assert all(len(t.statements) == 1 for t in notifies)  # never inside a transaction
    assert {t.connection for t in notifies}.isdisjoint(t.connection for t in commits)
