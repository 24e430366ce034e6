"""Issue 13, finding 5: the private allow-list decides per address. A name is refused if any
of its answers is neither public nor allowed, and only an address that passed is connected
to, on the first hop and after every redirect code. Real servers on 127.0.0.1 and
127.0.0.2 (one port), real DNS answers through the resolver seam."""

import ipaddress
from collections.abc import AsyncIterator, Callable, Iterator
from urllib.parse import quote

import pytest

from mediagate.media.addresses import AllowList, IPAddress
from mediagate.media.fetcher import REDIRECTS, FetchError, FetchPolicy, SafeFetcher, allow_list
from tests.media.loopback import LoopbackServer, twin_servers

DNS = {
    "mixed.test": ["127.0.0.1", "127.0.0.2"],
    "mixed-allowed-first.test": ["127.0.0.2", "127.0.0.1"],
    "allowed.test": ["127.0.0.2"],
    "trusted.test": ["127.0.0.1", "127.0.0.2"],
}
MIXED = ["mixed.test", "mixed-allowed-first.test"]


async def resolver(host: str, _port: int) -> list[IPAddress]:
    return [ipaddress.ip_address(a) for a in DNS.get(host, [])]


@pytest.fixture(scope="module")
def twins() -> Iterator[tuple[LoopbackServer, LoopbackServer]]:
    """(inner, allowed): inner on 127.0.0.1 must never be reached; allowed on 127.0.0.2."""
    with twin_servers("127.0.0.1", "127.0.0.2") as pair:
        yield pair


@pytest.fixture
def inner(twins: tuple[LoopbackServer, LoopbackServer]) -> LoopbackServer:
    twins[0].hits.clear()
    return twins[0]


@pytest.fixture
def allowed(twins: tuple[LoopbackServer, LoopbackServer]) -> LoopbackServer:
    twins[1].hits.clear()
    return twins[1]


@pytest.fixture
async def fetcher(
    twins: tuple[LoopbackServer, LoopbackServer],
) -> AsyncIterator[Callable[..., SafeFetcher]]:
    made: list[SafeFetcher] = []

    def make(*allow: str) -> SafeFetcher:
        policy = FetchPolicy(
            deadline_s=5, ports=frozenset({twins[0].port}), allow_private=frozenset(allow)
        )
        made.append(SafeFetcher(policy, resolver=resolver))
        return made[-1]

    yield make
    for safe in made:
        await safe.aclose()


def url(server: LoopbackServer, host: str, path: str = "/img/400x400.png") -> str:
    return f"http://{host}:{server.port}{path}"


@pytest.mark.parametrize("name", MIXED)
async def test_finding_5_a_name_with_an_answer_outside_the_allow_list_is_refused(
    fetcher: Callable[..., SafeFetcher], inner: LoopbackServer, allowed: LoopbackServer, name: str
) -> None:
    with pytest.raises(FetchError) as refused:
        await fetcher("127.0.0.2").fetch(url(inner, name))
    assert refused.value.reason == "blocked_address"
    assert "127.0.0.1" in refused.value.message
    assert inner.hits == [] and allowed.hits == []


@pytest.mark.parametrize("code", sorted(REDIRECTS))
@pytest.mark.parametrize("name", MIXED)
async def test_finding_5_every_redirect_from_an_allowed_host_to_a_mixed_name_is_refused(
    fetcher: Callable[..., SafeFetcher],
    inner: LoopbackServer,
    allowed: LoopbackServer,
    code: int,
    name: str,
) -> None:
    to = quote(url(inner, name), safe="")
    start = url(allowed, "allowed.test", f"/redirect?code={code}&to={to}")
    with pytest.raises(FetchError) as refused:
        await fetcher("127.0.0.2").fetch(start)
    assert refused.value.reason == "blocked_address"
    assert allowed.hits == [f"/redirect?code={code}&to={to}"]  # the allowed hop, only
    assert inner.hits == []


@pytest.mark.parametrize("code", sorted(REDIRECTS))
async def test_every_redirect_to_a_name_of_allowed_addresses_only_is_followed(
    fetcher: Callable[..., SafeFetcher], inner: LoopbackServer, allowed: LoopbackServer, code: int
) -> None:
    """The control for the test above: the same redirect, to a name without the bad answer."""
    to = quote(url(allowed, "allowed.test"), safe="")
    got = await fetcher("127.0.0.2").fetch(
        url(allowed, "127.0.0.2", f"/redirect?code={code}&to={to}")
    )
    assert got.body.startswith(b"\x89PNG") and got.url == url(allowed, "allowed.test")
    assert allowed.hits == [f"/redirect?code={code}&to={to}", "/img/400x400.png"]
    assert inner.hits == []


async def test_an_allowed_network_covers_its_addresses_for_any_name(
    fetcher: Callable[..., SafeFetcher], inner: LoopbackServer, allowed: LoopbackServer
) -> None:
    await fetcher("127.0.0.2/31").fetch(url(allowed, "allowed.test"))
    await fetcher("127.0.0.2/31").fetch(url(allowed, "127.0.0.2"))
    assert allowed.hits == ["/img/400x400.png"] * 2
    with pytest.raises(FetchError):  # 127.0.0.1 is outside 127.0.0.2/31
        await fetcher("127.0.0.2/31").fetch(url(inner, "mixed.test"))
    assert inner.hits == []


async def test_an_allow_listed_name_may_resolve_to_private_addresses_for_itself_only(
    fetcher: Callable[..., SafeFetcher], inner: LoopbackServer, allowed: LoopbackServer
) -> None:
    got = await fetcher("trusted.test").fetch(url(inner, "trusted.test"))
    assert got.body.startswith(b"\x89PNG") and inner.hits == ["/img/400x400.png"]
    with pytest.raises(FetchError) as refused:  # same answers, another name
        await fetcher("trusted.test").fetch(url(inner, "mixed.test"))
    assert refused.value.reason == "blocked_address"
    with pytest.raises(FetchError):  # a name entry allows no address as a literal
        await fetcher("trusted.test").fetch(url(inner, "127.0.0.1"))
    assert inner.hits == ["/img/400x400.png"] and allowed.hits == []


@pytest.mark.parametrize(
    ("entries", "names", "networks"),
    [
        (["127.0.0.2"], set(), ["127.0.0.2/32"]),
        (["[::1]", "fd00::/8"], set(), ["::1/128", "fd00::/8"]),
        (["10.1.0.0/16", "127.1"], set(), ["10.1.0.0/16", "127.0.0.1/32"]),
        (["Images.Internal.", " cdn.test "], {"images.internal", "cdn.test"}, []),
        (["bücher.test"], {"xn--bcher-kva.test"}, []),
    ],
)
def test_allow_list_entries_are_names_addresses_or_networks(
    entries: list[str], names: set[str], networks: list[str]
) -> None:
    parsed = AllowList.parse(entries)
    assert parsed.names == names
    assert [str(n) for n in parsed.networks] == networks


@pytest.mark.parametrize("entry", ["a b", "10.0.0.1/8", "10.0.0.0/33", "*.internal", "x/y", ""])
def test_a_bad_allow_list_entry_is_refused_by_name(entry: str) -> None:
    with pytest.raises(ValueError, match="allow-list entry") as refused:
        allow_list(["127.0.0.1", entry])
    assert repr(entry.strip()) in str(refused.value)
