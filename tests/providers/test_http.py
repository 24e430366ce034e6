"""ProviderHTTP against real loopback servers: every way a call can fail is classified
for the runner, and a submit whose fate is unknown is never called retryable."""

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest

from mediagate.providers.errors import ProviderRetryable, SubmitOutcomeUnknown
from mediagate.providers.http import MAX_RETRY_AFTER_S, ProviderHTTP, retry_after

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def server(handle: Handler) -> AsyncIterator[str]:
    """A raw TCP server on loopback that answers however `handle` does."""

    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handle(reader, writer)
        finally:
            writer.close()

    srv = await asyncio.start_server(guarded, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1/tasks"
    finally:
        srv.close()
        await srv.wait_closed()


def answer(body: bytes, status: str = "200 OK") -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()

    return handle


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")  # the request arrived; no answer, connection closed


async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    await asyncio.sleep(5)


@pytest.fixture
async def http() -> AsyncIterator[ProviderHTTP]:
    client = ProviderHTTP(timeout_s=0.5, connections=4)
    yield client
    await client.aclose()


async def test_a_json_answer_comes_back_with_its_status(http: ProviderHTTP) -> None:
    async with server(answer(b'{"code": 1302, "message": "slow down"}', "429 Too Many")) as url:
        status, body = await http.call_json("p", "POST", url, headers={}, json={"a": 1})
    assert (status, body) == (429, {"code": 1302, "message": "slow down"})


async def test_the_body_and_headers_are_sent(http: ProviderHTTP) -> None:
    seen: list[bytes] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.lower().split(b"\r\n")
        length = next(int(line.split(b":")[1]) for line in lines if b"content-length" in line)
        seen.extend([head, await reader.readexactly(length)])
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()

    async with server(echo) as url:
        await http.call_json("p", "POST", url, headers={"Authorization": "Bearer t"}, json={"n": 2})
    head, body = seen
    assert b"authorization: bearer t" in head.lower() and body == b'{"n": 2}'


async def test_a_refused_connection_is_retryable_even_for_a_submit(http: ProviderHTTP) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    with pytest.raises(ProviderRetryable, match="could not connect"):
        await http.call_json("p", "POST", f"http://127.0.0.1:{port}/", headers={}, creates=True)


@pytest.mark.parametrize("handle", [hang_up, never_answer], ids=["hang-up", "timeout"])
async def test_a_submit_without_an_answer_is_unknown_not_retryable(
    http: ProviderHTTP, handle: Handler
) -> None:
    async with server(handle) as url:
        with pytest.raises(SubmitOutcomeUnknown, match="no answer to the submit"):
            await http.call_json("p", "POST", url, headers={}, json={}, creates=True)
        with pytest.raises(ProviderRetryable, match="no answer"):
            await http.call_json("p", "GET", url, headers={})


async def test_an_unreadable_answer(http: ProviderHTTP) -> None:
    async with server(answer(b"<html>502 Bad Gateway</html>")) as url:
        with pytest.raises(SubmitOutcomeUnknown, match="unreadable answer to the submit"):
            await http.call_json("p", "POST", url, headers={}, creates=True)
        with pytest.raises(ProviderRetryable, match=r"unreadable answer \(HTTP 200\)"):
            await http.call_json("p", "GET", url, headers={})
    async with server(answer(b"oops", "500 Internal Server Error")) as url:
        # An error page to a submit: the provider says it failed, so retrying is safe.
        with pytest.raises(ProviderRetryable, match=r"HTTP 500"):
            await http.call_json("p", "POST", url, headers={}, creates=True)


NOW = datetime(2026, 12, 3, 7, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, 2.5),  # absent: the caller's default
        ("7", 7.0),  # delay-seconds
        (" 12 ", 12.0),
        ("Thu, 03 Dec 2026 07:00:30 GMT", 30.0),  # an HTTP-date, 30 s from now
        ("Thu, 03 Dec 2026 06:59:00 GMT", 0.0),  # already past: no wait
        ("Thu, 03 Dec 2026 07:00:05 -0000", 5.0),
        ("999999", MAX_RETRY_AFTER_S),  # capped: the task's deadline decides past that
        ("soon", 2.5),  # unreadable
        ("-3", 2.5),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(header: str | None, expected: float) -> None:
    headers = {} if header is None else {"retry-after": header}
    assert retry_after(headers, 2.5, now=NOW) == expected
