"""The fetcher's transport: one connection pool whose connections are keyed by (scheme,
host name, port, pinned address).

httpx's own transport keys connections by the URL's host, which for a pinned request is the
checked IP address: an https connection opened, and certificate-checked, for one name would
then be reused for any other name pinned to the same address, whose certificate was never
checked. Here the pool sees the name as part of the host, and a network backend strips it
again to connect to the pinned address (never resolving anything).
"""

import ipaddress
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from contextlib import contextmanager

import httpcore2
import httpx2

_SEPARATOR = "/"  # in neither an IP literal nor a host name

# httpcore's errors as the httpx ones callers catch, most specific first.
_ERRORS: tuple[tuple[type[Exception], type[httpx2.TransportError]], ...] = (
    (httpcore2.ConnectTimeout, httpx2.ConnectTimeout),
    (httpcore2.ReadTimeout, httpx2.ReadTimeout),
    (httpcore2.WriteTimeout, httpx2.WriteTimeout),
    (httpcore2.PoolTimeout, httpx2.PoolTimeout),
    (httpcore2.TimeoutException, httpx2.TimeoutException),
    (httpcore2.ConnectError, httpx2.ConnectError),
    (httpcore2.ReadError, httpx2.ReadError),
    (httpcore2.WriteError, httpx2.WriteError),
    (httpcore2.NetworkError, httpx2.NetworkError),
    (httpcore2.RemoteProtocolError, httpx2.RemoteProtocolError),
    (httpcore2.LocalProtocolError, httpx2.LocalProtocolError),
    (httpcore2.ProtocolError, httpx2.ProtocolError),
    (httpcore2.UnsupportedProtocol, httpx2.UnsupportedProtocol),
)


@contextmanager
def _as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for core_error, httpx_error in _ERRORS:
            if isinstance(exc, core_error):
                raise httpx_error(str(exc)) from exc
        raise


class _PinnedBackend(httpcore2.AnyIOBackend):
    """Connects to the address part of a pool host; refuses anything that is not an IP."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        address = host.partition(_SEPARATOR)[0]
        ipaddress.ip_address(address)  # a bug upstream, never a DNS lookup here
        return await super().connect_tcp(address, port, timeout, local_address, socket_options)


class _Body(httpx2.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors():
            async for chunk in self._stream:
                yield chunk

    async def aclose(self) -> None:
        aclose = getattr(self._stream, "aclose", None)
        if aclose is not None:
            await aclose()


class PinnedTransport(httpx2.AsyncBaseTransport):
    """Sends requests whose URL host is the pinned IP address; the name a connection is
    for is the TLS server name (`sni_hostname`) for https, the Host header for http."""

    def __init__(self, *, verify: ssl.SSLContext | bool, limits: httpx2.Limits) -> None:
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=httpx2.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_PinnedBackend(),
        )

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        address = request.url.host
        ipaddress.ip_address(address)  # only pinned requests come here
        if request.url.scheme == "https":
            name = str(request.extensions["sni_hostname"])
        else:
            name = request.headers.get("host", "")
        assert isinstance(request.stream, httpx2.AsyncByteStream)
        core_request = httpcore2.Request(
            method=request.method,
            url=httpcore2.URL(
                scheme=request.url.raw_scheme,
                host=f"{address}{_SEPARATOR}{name}".encode("ascii"),
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx_errors():
            response = await self._pool.handle_async_request(core_request)
        assert isinstance(response.stream, AsyncIterable)
        return httpx2.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_Body(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()
