"""Issue 13, finding 6: a pooled https connection is never reused for another name. A real
TLS server on loopback holds a certificate (from a throwaway CA) for a.test only; a.test
and b.test both resolve to it through the resolver seam."""

import ipaddress
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from mediagate.media.addresses import IPAddress
from mediagate.media.fetcher import FetchError, FetchPolicy, SafeFetcher
from tests.media.loopback import Certificates, LoopbackServer, make_certificates, serving


async def resolver(host: str, _port: int) -> list[IPAddress]:
    return [ipaddress.ip_address("127.0.0.1")] if host in ("a.test", "b.test") else []


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(Path(tmp_path_factory.mktemp("tls")), "a.test")


@pytest.fixture(scope="module")
def tls_server(certificates: Certificates) -> Iterator[LoopbackServer]:
    with serving(LoopbackServer("127.0.0.1", tls=certificates.server_context())) as server:
        yield server


@pytest.fixture
async def fetcher(
    certificates: Certificates, tls_server: LoopbackServer
) -> AsyncIterator[SafeFetcher]:
    tls_server.hits.clear()
    tls_server.connections.clear()
    policy = FetchPolicy(
        deadline_s=5, ports=frozenset({tls_server.port}), allow_private=frozenset({"127.0.0.1"})
    )
    safe = SafeFetcher(policy, resolver=resolver, verify=certificates.client_context())
    yield safe
    await safe.aclose()


def url(server: LoopbackServer, host: str) -> str:
    return f"https://{host}:{server.port}/img/400x400.png"


async def test_finding_6_a_connection_checked_for_one_name_is_not_reused_for_another(
    fetcher: SafeFetcher, tls_server: LoopbackServer
) -> None:
    got = await fetcher.fetch(url(tls_server, "a.test"))
    assert got.body.startswith(b"\x89PNG")
    with pytest.raises(FetchError) as refused:
        await fetcher.fetch(url(tls_server, "b.test"))
    assert refused.value.reason == "unreachable"
    assert "certificate" in refused.value.message and "b.test" in refused.value.message
    assert tls_server.hits == ["/img/400x400.png"]  # b.test's request was never sent


async def test_the_certificate_is_checked_against_the_name_on_a_fresh_connection(
    fetcher: SafeFetcher, tls_server: LoopbackServer
) -> None:
    """The control for the test above: b.test alone fails the same way."""
    with pytest.raises(FetchError) as refused:
        await fetcher.fetch(url(tls_server, "b.test"))
    assert "certificate" in refused.value.message and tls_server.hits == []


async def test_connections_are_still_reused_for_the_same_name(
    fetcher: SafeFetcher, tls_server: LoopbackServer
) -> None:
    for _ in range(3):
        await fetcher.fetch(url(tls_server, "a.test"))
    assert len(tls_server.hits) == 3
    assert len(set(tls_server.connections)) == 1  # one TLS handshake, kept alive
