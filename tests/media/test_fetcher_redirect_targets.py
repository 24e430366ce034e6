"""Issue 13, finding 8: whatever a redirect's Location holds, the fetcher answers with the
same clean refusal as for any URL a user gives (never an unmapped exception), so a task
with such a reference fails at once and its hold is released."""

import ipaddress
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx2
import pytest
from sqlalchemy import select

from mediagate.app import build_runner
from mediagate.core.db import Database
from mediagate.core.migrate import upgrade
from mediagate.core.settings import Settings
from mediagate.ledger import service as ledger
from mediagate.ledger.models import LedgerTransfer
from mediagate.media.addresses import IPAddress
from mediagate.media.fetcher import FetchError, FetchPolicy, SafeFetcher
from tests.factories import KeyFactory, generation
from tests.media.loopback import LoopbackServer, serving

BLOCKED, BAD = "blocked_address", "bad_url"
JUNK: list[tuple[str, set[str]]] = [
    ("http://0177.0.0.1/", {BLOCKED}),  # octal loopback: httpx's own join refuses to parse it
    ("http://0x7f.1/", {BLOCKED}),
    ("http://2130706433/", {BLOCKED}),
    ("http://[::1", {BAD}),
    ("http://[::1]x/", {BAD, BLOCKED}),  # read as [::1] by urlsplit: checked as that
    ("http://[not-ipv6]/", {BAD}),
    ("http://a b/", {BAD}),
    ("http://%31%32%37.0.0.1/", {BAD}),
    ("http://exa_mple..test/", {BAD}),
    ("http://" + "a" * 64 + ".test/", {BAD}),
    ("http://images.test:99999999/", {BAD}),
    ("http://images.test:-1/", {BAD}),
    ("http://images.test:8o/", {BAD}),
    ("javascript:alert(1)", {BAD}),
    ("data:image/png;base64,AAAA", {BAD}),
    ("file:///etc/passwd", {BAD}),
    ("http://", {BAD, "too_many_redirects"}),  # as a Location: "here" again
    ("http://user@images.test/", {BAD}),
    ("http://images.test:6379/", {BLOCKED}),
]


async def resolver(host: str, _port: int) -> list[IPAddress]:
    return [ipaddress.ip_address("127.0.0.2")] if host == "images.test" else []


@pytest.fixture(scope="module")
def origin() -> Iterator[LoopbackServer]:
    """The allowed first hop, on 127.0.0.2: 127.0.0.1 stays outside the allow-list."""
    with serving(LoopbackServer("127.0.0.2")) as server:
        yield server


@pytest.fixture
async def fetcher(origin: LoopbackServer) -> AsyncIterator[SafeFetcher]:
    policy = FetchPolicy(
        deadline_s=5,
        ports=frozenset({80, 443, origin.port}),
        allow_private=frozenset({"images.test"}),
    )
    safe = SafeFetcher(policy, resolver=resolver)
    yield safe
    await safe.aclose()


def redirect(origin: LoopbackServer, to: str) -> str:
    return f"http://images.test:{origin.port}/redirect?to={quote(to, safe='')}"


@pytest.mark.parametrize(("location", "reasons"), JUNK, ids=[j[0] for j in JUNK])
async def test_finding_8_an_unparseable_redirect_target_is_a_clean_refusal(
    fetcher: SafeFetcher, origin: LoopbackServer, location: str, reasons: set[str]
) -> None:
    with pytest.raises(FetchError) as refused:
        await fetcher.fetch(redirect(origin, location))
    assert refused.value.reason in reasons, refused.value.message


@pytest.mark.parametrize(("location", "reasons"), JUNK, ids=[j[0] for j in JUNK])
async def test_the_same_targets_given_directly_are_refused_alike(
    fetcher: SafeFetcher, location: str, reasons: set[str]
) -> None:
    with pytest.raises(FetchError) as refused:
        await fetcher.fetch(location)
    assert refused.value.reason in reasons, refused.value.message


async def test_a_relative_redirect_still_works(
    fetcher: SafeFetcher, origin: LoopbackServer
) -> None:
    got = await fetcher.fetch(redirect(origin, "/img/400x400.png"))
    assert got.url == f"http://images.test:{origin.port}/img/400x400.png"


@pytest.fixture
def settings(make_settings: Callable[..., Settings], origin: LoopbackServer) -> Settings:
    s = make_settings(fetch_allow_private_hosts=["127.0.0.2"], fetch_ports=[80, 443, origin.port])
    upgrade(s)
    return s


async def test_finding_8_a_task_whose_reference_redirects_to_junk_fails_at_once_released(
    app: Any,
    client: httpx2.AsyncClient,
    keys: KeyFactory,
    db: Database,
    origin: LoopbackServer,
) -> None:
    key = await keys(credits=6)
    reference = f"http://127.0.0.2:{origin.port}/redirect?to={quote('http://0177.0.0.1/')}"
    submitted = await client.post(
        "/api/v1/images/generations",
        json=generation(images=[reference]),
        headers=key.headers,
    )
    assert submitted.status_code == 200, submitted.text
    task_id = submitted.json()["data"]["task_id"]
    core = app.state.core
    runner = build_runner(core.db, core.settings, core.catalog, app.state.components)
    await runner.drain(timeout_s=10)  # a retried step would outlast this
    task = (await client.get(f"/api/v1/tasks/{task_id}", headers=key.headers)).json()["data"]
    assert task["status"] == "failed" and task["credits"] == 0
    assert task["error"]["type"] == "invalid_image"
    assert "images[0]: blocked address" in task["error"]["message"]
    async with db.read() as s:
        kinds = await s.scalars(
            select(LedgerTransfer.kind).where(LedgerTransfer.task_id == task_id)
        )
        assert list(kinds) == ["hold", "release"]
        assert await ledger.balance(s, key.account_id, "test") == ledger.Balance(posted=6, held=0)
