"""The fetcher against real misbehaving servers on loopback: cut off by the deadline and
the byte cap, whatever the server says."""

import ipaddress
import time
from collections.abc import AsyncIterator, Callable

import httpx2
import pytest

from mediagate.media.addresses import IPAddress
from mediagate.media.fetcher import FetchError, FetchPolicy, SafeFetcher
from tests.servers import ImageServer


class RecordingTransport(httpx2.AsyncHTTPTransport):
    """The real network transport, recording where each connection goes."""

    def __init__(self) -> None:
        super().__init__()
        self.hosts: list[str] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.hosts.append(str(request.url.host))
        return await super().handle_async_request(request)


@pytest.fixture
async def made() -> AsyncIterator[list[SafeFetcher]]:
    fetchers: list[SafeFetcher] = []
    yield fetchers
    for safe in fetchers:
        await safe.aclose()


@pytest.fixture
def fetcher(images: ImageServer, made: list[SafeFetcher]) -> Callable[..., SafeFetcher]:
    def make(transport: httpx2.AsyncBaseTransport | None = None, **policy: object) -> SafeFetcher:
        values: dict[str, object] = {
            "deadline_s": 2.0,
            "max_bytes": 1_000_000,
            "ports": frozenset({80, 443, images.server_address[1]}),
            "allow_private": frozenset({"127.0.0.1"}),
            **policy,
        }
        safe = SafeFetcher(FetchPolicy(**values), transport=transport)  # type: ignore[arg-type]
        made.append(safe)
        return safe

    return make


async def refused(safe: SafeFetcher, url: str) -> tuple[FetchError, float]:
    started = time.monotonic()
    with pytest.raises(FetchError) as info:
        await safe.fetch(url)
    return info.value, time.monotonic() - started


async def test_an_image_is_fetched(
    images: ImageServer, fetcher: Callable[..., SafeFetcher]
) -> None:
    got = await fetcher().fetch(images.url("/img/640x480.jpg"))
    assert got.body.startswith(b"\xff\xd8\xff") and got.status == 200


async def test_slow_drip_is_cut_at_the_deadline(
    images: ImageServer, fetcher: Callable[..., SafeFetcher]
) -> None:
    error, elapsed = await refused(fetcher(), images.url("/slow"))
    assert error.reason == "timed_out"
    assert elapsed < 4  # 2 s deadline, a loaded machine's slack


async def test_endless_body_is_cut_at_the_byte_cap(
    images: ImageServer, fetcher: Callable[..., SafeFetcher]
) -> None:
    error, elapsed = await refused(fetcher(), images.url("/endless"))
    assert error.reason == "too_large"
    assert elapsed < 2


async def test_a_huge_declared_length_is_refused_before_reading(
    images: ImageServer, fetcher: Callable[..., SafeFetcher]
) -> None:
    error, _ = await refused(fetcher(), images.url("/huge-length"))
    assert error.reason == "too_large"


async def test_a_lying_content_length_never_yields_more_than_it_claimed(
    images: ImageServer, fetcher: Callable[..., SafeFetcher]
) -> None:
    got = await fetcher().fetch(images.url("/lying-length"))
    assert len(got.body) == 100  # the rest of what the server pushed was never read


async def test_gzip_bomb_stops_at_the_cap_once_decompressed(
    images: ImageServer, fetcher: Callable[..., SafeFetcher]
) -> None:
    error, elapsed = await refused(fetcher(), images.url("/gzip-bomb?mb=50"))
    assert error.reason == "too_large" and "decompressed" in error.message
    assert elapsed < 2


async def test_404_is_unreachable_not_an_image(
    images: ImageServer, fetcher: Callable[..., SafeFetcher]
) -> None:
    error, _ = await refused(fetcher(), images.url("/missing.png"))
    assert error.reason == "http_error" and "404" in error.message


async def test_redirects_are_followed_and_each_hop_checked(
    images: ImageServer, fetcher: Callable[..., SafeFetcher]
) -> None:
    transport = RecordingTransport()
    target = images.url("/img/400x400.png")
    got = await fetcher(transport).fetch(images.url(f"/redirect?to={target}"))
    assert got.url == target and got.hops == [images.url(f"/redirect?to={target}"), target]


async def test_a_redirect_to_a_private_address_is_refused_without_connecting(
    images: ImageServer, fetcher: Callable[..., SafeFetcher]
) -> None:
    transport = RecordingTransport()
    for inward in ("http://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://10.0.0.1/"):
        error, _ = await refused(fetcher(transport), images.url(f"/redirect?to={inward}"))
        assert error.reason == "blocked_address"
    assert set(transport.hosts) == {"127.0.0.1"}  # only the allowed first hop


async def test_a_public_looking_host_redirecting_inward_is_refused(
    images: ImageServer, made: list[SafeFetcher]
) -> None:
    """cdn.test looks like any public host (here: allowed by name, resolving to the test
    server); the address it redirects to is not allowed, so no connection is made there."""
    transport = RecordingTransport()
    port = images.server_address[1]

    async def resolver(host: str, _port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("127.0.0.1")] if host == "cdn.test" else []

    safe = SafeFetcher(
        FetchPolicy(deadline_s=2, ports=frozenset({port}), allow_private=frozenset({"cdn.test"})),
        resolver=resolver,
        transport=transport,
    )
    made.append(safe)
    inward = f"http://192.168.0.1:{port}/"
    error, _ = await refused(safe, f"http://cdn.test:{port}/redirect?to={inward}")
    assert error.reason == "blocked_address"
    assert transport.hosts == ["127.0.0.1"]


async def test_too_many_redirects(images: ImageServer, fetcher: Callable[..., SafeFetcher]) -> None:
    url = images.url("/img/400x400.png")
    for _ in range(4):
        url = images.url(f"/redirect?to={httpx2.URL(url)}")
    error, _ = await refused(fetcher(), url)
    assert error.reason == "too_many_redirects"


async def test_a_closed_port_is_unreachable(
    images: ImageServer, fetcher: Callable[..., SafeFetcher]
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nothing listens once the socket is closed
    safe = fetcher(ports=frozenset({closed}))
    error, _ = await refused(safe, f"http://127.0.0.1:{closed}/a.png")
    assert error.reason == "unreachable"
