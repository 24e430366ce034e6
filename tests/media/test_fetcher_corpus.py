"""Every URL form that must never reach an internal address, refused at the fetcher, with a
transport that records every connection attempt: it must see none."""

import ipaddress

import httpx2
import pytest

from mediagate.media.addresses import IPAddress
from mediagate.media.fetcher import FetchError, FetchPolicy, SafeFetcher, system_resolver
from tests.servers import make_image

FAKE_DNS = {
    "private.test": ["10.0.0.5"],
    "mixed.test": ["93.184.216.34", "127.0.0.1"],  # one bad answer is enough to refuse
    "mapped.test": ["::ffff:127.0.0.1"],
    "metadata.test": ["169.254.169.254"],
    "nat64.test": ["64:ff9b::a9fe:a9fe"],
    "cgnat.test": ["100.100.100.100"],
    "sixtofour.test": ["2002:a9fe:a9fe::1"],
    "ula.test": ["fd00::1234"],
    "public.test": ["93.184.216.34"],
    "public6.test": ["2606:2800:220:1:248:1893:25c8:1946"],
}


class Recorder(httpx2.AsyncBaseTransport):
    """Stands where the network would be: records each request's (pinned) destination."""

    def __init__(self) -> None:
        self.requests: list[httpx2.Request] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        body = httpx2.ByteStream(make_image(400, 400))
        return httpx2.Response(200, stream=body, headers={"content-type": "image/png"})


async def fake_resolver(host: str, port: int) -> list[IPAddress]:
    if host in FAKE_DNS:
        return [ipaddress.ip_address(a) for a in FAKE_DNS[host]]
    return await system_resolver(host, port)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def fetcher(recorder: Recorder, **policy: object) -> SafeFetcher:
    return SafeFetcher(
        FetchPolicy(deadline_s=5, **policy), resolver=fake_resolver, transport=recorder
    )  # type: ignore[arg-type]


BLOCKED = "blocked_address"
BAD = "bad_url"
CORPUS: list[tuple[str, set[str]]] = [
    # IPv4 loopback, every spelling a resolver accepts
    ("http://127.0.0.1/", {BLOCKED}),
    ("http://127.1/", {BLOCKED}),
    ("http://127.0.1/", {BLOCKED}),
    ("http://127.255.255.254/", {BLOCKED}),
    ("http://2130706433/", {BLOCKED}),
    ("http://0x7f000001/", {BLOCKED}),
    ("http://0x7f.0x0.0x0.0x1/", {BLOCKED}),
    ("http://0x7F.1/", {BLOCKED}),
    ("http://0177.0.0.1/", {BLOCKED}),
    ("http://017700000001/", {BLOCKED}),
    ("http://0177.1/", {BLOCKED}),
    ("http://127.0.0.1.:80/", {BLOCKED}),
    ("https://127.0.0.1/", {BLOCKED}),
    ("http://0/", {BLOCKED}),
    ("http://0.0.0.0/", {BLOCKED}),
    ("http://0.0.0.1/", {BLOCKED}),
    # private, link-local, metadata
    ("http://10.0.0.1/", {BLOCKED}),
    ("http://10.255.255.255/", {BLOCKED}),
    ("http://172.16.0.1/", {BLOCKED}),
    ("http://172.31.255.254/", {BLOCKED}),
    ("http://192.168.1.1/", {BLOCKED}),
    ("http://169.254.169.254/latest/meta-data/", {BLOCKED}),
    ("http://2852039166/", {BLOCKED}),
    ("http://0xa9fea9fe/", {BLOCKED}),
    ("http://0251.0376.0251.0376/", {BLOCKED}),
    ("http://169.254.0.1/", {BLOCKED}),
    # CGNAT, multicast, reserved, documentation, benchmarking
    ("http://100.64.0.1/", {BLOCKED}),
    ("http://100.127.255.254/", {BLOCKED}),
    ("http://224.0.0.1/", {BLOCKED}),
    ("http://239.255.255.250/", {BLOCKED}),
    ("http://240.0.0.1/", {BLOCKED}),
    ("http://255.255.255.255/", {BLOCKED}),
    ("http://192.0.0.1/", {BLOCKED}),
    ("http://192.0.2.1/", {BLOCKED}),
    ("http://198.18.0.1/", {BLOCKED}),
    ("http://198.51.100.1/", {BLOCKED}),
    ("http://203.0.113.1/", {BLOCKED}),
    # IPv6 literals, including every form that embeds an IPv4 address
    ("http://[::1]/", {BLOCKED}),
    ("http://[::]/", {BLOCKED}),
    ("http://[0:0:0:0:0:0:0:1]/", {BLOCKED}),
    ("http://[::ffff:127.0.0.1]/", {BLOCKED}),
    ("http://[::ffff:7f00:1]/", {BLOCKED}),
    ("http://[0:0:0:0:0:ffff:127.0.0.1]/", {BLOCKED}),
    ("http://[::ffff:169.254.169.254]/", {BLOCKED}),
    ("http://[::ffff:a9fe:a9fe]/", {BLOCKED}),
    ("http://[::ffff:10.0.0.1]/", {BLOCKED}),
    ("http://[::127.0.0.1]/", {BLOCKED}),
    ("http://[::a9fe:a9fe]/", {BLOCKED}),
    ("http://[2002:7f00:1::]/", {BLOCKED}),
    ("http://[2002:a9fe:a9fe::1]/", {BLOCKED}),
    ("http://[2002:c0a8:101::1]/", {BLOCKED}),
    ("http://[64:ff9b::127.0.0.1]/", {BLOCKED}),
    ("http://[64:ff9b::a9fe:a9fe]/", {BLOCKED}),
    ("http://[64:ff9b::10.0.0.1]/", {BLOCKED}),
    ("http://[64:ff9b:1::a00:1]/", {BLOCKED}),
    ("http://[fe80::1]/", {BLOCKED}),
    ("http://[fe80::1%25eth0]/", {BLOCKED, BAD}),
    ("http://[fc00::1]/", {BLOCKED}),
    ("http://[fd12:3456::1]/", {BLOCKED}),
    ("http://[fec0::1]/", {BLOCKED}),
    ("http://[ff02::1]/", {BLOCKED}),
    ("http://[2001:db8::1]/", {BLOCKED}),
    ("http://[2001::1]/", {BLOCKED}),
    ("http://[100::1]/", {BLOCKED}),
    # names that resolve inward
    ("http://localhost/", {BLOCKED}),
    ("http://LOCALHOST./", {BLOCKED}),
    ("http://private.test/", {BLOCKED}),
    ("http://mixed.test/", {BLOCKED}),
    ("http://mapped.test/", {BLOCKED}),
    ("http://metadata.test/", {BLOCKED}),
    ("http://nat64.test/", {BLOCKED}),
    ("http://cgnat.test/", {BLOCKED}),
    ("http://sixtofour.test/", {BLOCKED}),
    ("http://ula.test/", {BLOCKED}),
    # schemes, credentials, ports
    ("ftp://public.test/a.png", {BAD}),
    ("file:///etc/passwd", {BAD}),
    ("gopher://127.0.0.1:6379/_INFO", {BAD}),
    ("dict://127.0.0.1:11211/", {BAD}),
    ("http://user:pass@public.test/", {BAD}),
    ("http://public.test@127.0.0.1/", {BAD}),
    ("http://public.test:6379/", {BLOCKED}),
    ("http://public.test:22/", {BLOCKED}),
]


def test_the_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 60


@pytest.mark.parametrize(("url", "reasons"), CORPUS, ids=[c[0] for c in CORPUS])
async def test_refused_without_a_connection(
    recorder: Recorder, url: str, reasons: set[str]
) -> None:
    with pytest.raises(FetchError) as refused:
        await fetcher(recorder).fetch(url)
    assert refused.value.reason in reasons, refused.value.message
    assert recorder.requests == []


async def test_a_public_host_is_fetched_at_its_checked_address(recorder: Recorder) -> None:
    got = await fetcher(recorder).fetch("https://public.test/a.png?x=1")
    [request] = recorder.requests
    assert request.url.host == "93.184.216.34" and request.url.scheme == "https"
    assert request.url.path == "/a.png" and request.url.query == b"x=1"
    assert request.headers["host"] == "public.test"
    assert request.extensions["sni_hostname"] == "public.test"  # TLS checked against the name
    assert got.body.startswith(b"\x89PNG")


async def test_a_public_ipv6_host_is_fetched_at_its_checked_address(recorder: Recorder) -> None:
    await fetcher(recorder).fetch("http://public6.test:8080/a.png")
    [request] = recorder.requests
    assert request.url.host == "2606:2800:220:1:248:1893:25c8:1946"
    assert request.headers["host"] == "public6.test:8080"


async def test_dns_answering_differently_the_second_time_changes_nothing(
    recorder: Recorder,
) -> None:
    answers = [["93.184.216.34"], ["127.0.0.1"], ["127.0.0.1"]]
    calls: list[str] = []

    async def rebinding(host: str, port: int) -> list[IPAddress]:
        calls.append(host)
        return [ipaddress.ip_address(a) for a in answers[len(calls) - 1]]

    safe = SafeFetcher(FetchPolicy(deadline_s=5), resolver=rebinding, transport=recorder)
    await safe.fetch("http://rebind.test/a.png")
    assert calls == ["rebind.test"]  # resolved once...
    assert [r.url.host for r in recorder.requests] == ["93.184.216.34"]  # ...and pinned


async def test_the_private_allow_list_is_explicit(recorder: Recorder) -> None:
    with pytest.raises(FetchError):
        await fetcher(recorder).fetch("http://private.test/a.png")
    await fetcher(recorder, allow_private=frozenset({"private.test"})).fetch(
        "http://private.test/a.png"
    )
    assert [r.url.host for r in recorder.requests] == ["10.0.0.5"]
