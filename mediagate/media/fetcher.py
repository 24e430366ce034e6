"""Fetch a URL a user gave us without ever reaching an internal address.

- http/https only, no userinfo, ports from an allow-list, a syntactically valid host;
- the host is resolved ONCE (A and AAAA); every answer must be public (or allowed, see
  `AllowList`), else refuse the name: one bad answer is enough;
- the connection goes to the checked address (pinned), with the Host header and TLS SNI
  (and certificate check) still using the hostname: DNS rebinding cannot slip in;
- pooled connections are keyed by (scheme, name, port, address), so a connection checked
  for one name is never reused for another (pinned_transport.py);
- redirects followed by hand, each hop checked again like a first URL (an unparseable
  target is a bad URL like any other); a total deadline over all hops; a byte cap that
  holds whatever Content-Length says; compressed bodies are decoded with the same cap, so
  a gzip bomb stops at the cap;
- an explicit allow-list of private hosts, empty by default (tests use it for loopback).
"""

import asyncio
import contextlib
import ipaddress
import socket
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urljoin, urlsplit

import httpx2

from mediagate.media.addresses import AllowList, IPAddress, host_name, parse_ip_literal
from mediagate.media.pinned_transport import PinnedTransport

Reason = Literal[
    "bad_url",
    "blocked_address",
    "unreachable",
    "timed_out",
    "too_large",
    "http_error",
    "too_many_redirects",
]
REDIRECTS = {301, 302, 303, 307, 308}
DEFAULT_PORTS = {"http": 80, "https": 443}

T = TypeVar("T")
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]


class FetchError(Exception):
    """Why a URL could not be fetched, in words a user can act on."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class FetchPolicy:
    max_bytes: int = 10_000_000
    deadline_s: float = 20.0
    max_redirects: int = 3
    ports: frozenset[int] = frozenset({80, 443, 8080, 8443})
    allow_private: frozenset[str] = frozenset()
    """Host names, IP addresses and networks that may be private (see `AllowList`): for
    tests and trusted internals."""


@dataclass(frozen=True)
class Fetched:
    url: str
    status: int
    content_type: str | None
    body: bytes
    hops: list[str] = field(default_factory=list)


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise FetchError("unreachable", f"the host {host} could not be resolved") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


class SafeFetcher:
    """One per process: holds an HTTP client that never follows redirects or proxies."""

    def __init__(
        self,
        policy: FetchPolicy,
        *,
        resolver: Resolver = system_resolver,
        transport: httpx2.AsyncBaseTransport | None = None,
        verify: ssl.SSLContext | bool = True,
        limits: httpx2.Limits | None = None,
    ) -> None:
        self.policy = policy
        self.resolver = resolver
        self.allowed = AllowList.parse(policy.allow_private)
        limits = limits or httpx2.Limits(max_connections=100, max_keepalive_connections=20)
        self.client = httpx2.AsyncClient(
            transport=transport or PinnedTransport(verify=verify, limits=limits),
            follow_redirects=False,
            trust_env=False,  # no proxy or netrc from the environment
            timeout=httpx2.Timeout(policy.deadline_s),
            headers={
                "Accept-Encoding": "gzip, deflate, identity",
                "User-Agent": "mediagate-fetcher/1",
            },
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def fetch(self, url: str, *, max_bytes: int | None = None) -> Fetched:
        limit = max_bytes or self.policy.max_bytes

        async def keep(response: httpx2.Response) -> bytes:
            return await read_capped(response, limit)

        async with self._deadline(self.policy.deadline_s):
            current, response, body, hops = await self._get(url, keep)
        return Fetched(
            current, response.status_code, response.headers.get("content-type"), body, hops
        )

    async def download(self, url: str, dest: Path, *, max_bytes: int, deadline_s: float) -> int:
        """Stream `url` into the file `dest` (never more than one chunk in memory),
        refusing it once it passes `max_bytes`; the number of bytes written."""

        async def save(response: httpx2.Response) -> int:
            return await write_capped(response, max_bytes, dest)

        async with self._deadline(deadline_s):
            _, _, size, _ = await self._get(url, save)
        return size

    @contextlib.asynccontextmanager
    async def _deadline(self, deadline_s: float) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(deadline_s):
                yield
        except TimeoutError:
            raise FetchError("timed_out", f"no complete answer within {deadline_s:g} s") from None
        except httpx2.TransportError as exc:
            raise FetchError("unreachable", _could_not("connect", exc)) from None

    async def _get(
        self, url: str, consume: Callable[[httpx2.Response], Awaitable[T]]
    ) -> tuple[str, httpx2.Response, T, list[str]]:
        """GET `url`, following checked redirects, and hand the 200 answer to `consume`."""
        hops: list[str] = []
        current = url
        for _ in range(self.policy.max_redirects + 1):
            hops.append(current)
            target = await self.check_url(current)
            async with self.client.stream(
                "GET",
                target.pinned_url,
                headers={"Host": target.host_header},
                extensions=target.extensions,
            ) as response:
                if response.status_code in REDIRECTS and "location" in response.headers:
                    current = _redirect_target(current, response.headers["location"])
                    continue
                if response.status_code != 200:
                    raise FetchError(
                        "http_error", f"the server answered HTTP {response.status_code}"
                    )
                return current, response, await consume(response), hops
        raise FetchError("too_many_redirects", f"more than {self.policy.max_redirects} redirects")

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST `body` to a user's URL (callbacks) under the same checks; redirects are not
        followed (a callback receiver answers, it does not send us elsewhere). The status."""
        try:
            async with asyncio.timeout(self.policy.deadline_s):
                target = await self.check_url(url)
                async with self.client.stream(
                    "POST",
                    target.pinned_url,
                    content=body,
                    headers={**headers, "Host": target.host_header},
                    extensions=target.extensions,
                ) as response:
                    await read_capped(response, 64 * 1024)
                    return response.status_code
        except TimeoutError:
            raise FetchError(
                "timed_out", f"no answer within {self.policy.deadline_s:g} s"
            ) from None
        except httpx2.TransportError as exc:
            raise FetchError("unreachable", _could_not("deliver", exc)) from None

    async def check_url(self, url: str) -> "Target":
        """Everything about a URL that can be checked before connecting; the pinned target."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise FetchError("bad_url", f"not a valid URL ({exc})") from None
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise FetchError("bad_url", "only http and https URLs can be fetched")
        if parts.username is not None or parts.password is not None:
            raise FetchError("bad_url", "URLs with a user name or password are not fetched")
        given = (parts.hostname or "").rstrip(".")
        if not given:
            raise FetchError("bad_url", "the URL has no host")
        literal = parse_ip_literal(given)
        host = str(literal) if literal is not None else host_name(given)
        if host is None:
            raise FetchError("bad_url", f"{given!r} is not a valid host name")
        port = port or DEFAULT_PORTS[scheme]
        if port not in self.policy.ports:
            raise FetchError("blocked_address", f"port {port} is not allowed")
        addresses = [literal] if literal is not None else await self.resolver(host, port)
        if not addresses:
            raise FetchError("unreachable", f"the host {host} has no address")
        # Every answer decides: with any one refused the name is refused, so the address
        # connected to below has always passed, whichever answer comes first.
        refused = self.allowed.refused(host, addresses)
        if refused:
            raise FetchError(
                "blocked_address", f"{host} resolves to a non-public address ({refused[0]})"
            )
        addresses.sort(key=lambda a: a.version)  # IPv4 first: the common, reliable path
        path = parts.path or "/"
        target = Target(
            scheme, host, port, addresses[0], f"{path}?{parts.query}" if parts.query else path
        )
        try:
            target.pinned_url  # noqa: B018 (httpx's own URL checks, before any connection)
        except httpx2.InvalidURL as exc:
            raise FetchError("bad_url", f"not a valid URL ({exc})") from None
        return target


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    address: IPAddress
    path: str
    """Path and query, as given."""

    @cached_property
    def pinned_url(self) -> httpx2.URL:
        ip = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return httpx2.URL(f"{self.scheme}://{ip}:{self.port}{self.path}")

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @property
    def extensions(self) -> dict[str, str]:
        # TLS: SNI and certificate verification against the name, not the pinned address.
        return {"sni_hostname": self.host} if self.scheme == "https" else {}


def _redirect_target(current: str, location: str) -> str:
    """Where a redirect leads, joined leniently: check_url then judges it like any URL a
    user gives (httpx's own join refuses forms such as `0177.0.0.1` with its own error)."""
    try:
        return urljoin(current, location.strip())
    except ValueError as exc:
        raise FetchError("bad_url", f"the redirect target is not a valid URL ({exc})") from None


def _could_not(what: str, exc: httpx2.TransportError) -> str:
    """The words for a transport failure; a refused certificate says why."""
    cause: BaseException | None = exc
    for _ in range(8):  # httpx -> httpcore -> ssl is three links; never loop on a cycle
        if cause is None:
            break
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"could not {what}: the TLS certificate was refused ({cause.verify_message})"
        cause = cause.__cause__ or cause.__context__
    return f"could not {what} ({type(exc).__name__})"


async def capped_chunks(response: httpx2.Response, limit: int) -> AsyncIterator[bytes]:
    """The body, decoded, chunk by chunk, refusing it once more than `limit` bytes have
    come (raw or decompressed) or a declared Content-Length says it will."""
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise FetchError("too_large", f"the file is larger than {limit} bytes")
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    decoder = _decoder(encoding)
    raw_seen = decoded = 0
    async for chunk in response.aiter_raw():
        raw_seen += len(chunk)
        if raw_seen > limit:
            raise FetchError("too_large", f"the file is larger than {limit} bytes")
        piece = chunk if decoder is None else decoder.decompress(chunk, limit + 1 - decoded)
        decoded += len(piece)
        if decoded > limit or (decoder is not None and decoder.unconsumed_tail):
            raise FetchError(
                "too_large", f"the file is larger than {limit} bytes once decompressed"
            )
        yield piece


async def read_capped(response: httpx2.Response, limit: int) -> bytes:
    """The body, decoded, refusing to hold more than `limit` bytes at any point."""
    out = bytearray()
    async for piece in capped_chunks(response, limit):
        out += piece
    return bytes(out)


WRITE_EVERY = 1 << 20
"""Bytes gathered before one write to disk (in a thread, off the event loop)."""


async def write_capped(response: httpx2.Response, limit: int, dest: Path) -> int:
    """The body, decoded, written to `dest` as it arrives; at most about 1 MiB is held."""
    size = 0
    pending = bytearray()
    with dest.open("wb") as f:
        async for piece in capped_chunks(response, limit):
            pending += piece
            size += len(piece)
            if len(pending) >= WRITE_EVERY:
                await asyncio.to_thread(f.write, bytes(pending))
                pending.clear()
        if pending:
            await asyncio.to_thread(f.write, bytes(pending))
    return size


def _decoder(encoding: str) -> "zlib._Decompress | None":
    if encoding in ("identity", ""):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    raise FetchError("http_error", f"unsupported Content-Encoding {encoding!r}")


def allow_list(entries: Iterable[str]) -> frozenset[str]:
    """The allow-list setting's entries, checked (ValueError naming a bad one) and trimmed."""
    entries = [e.strip() for e in entries]
    AllowList.parse(entries)
    return frozenset(entries)
