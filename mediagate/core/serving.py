"""Server limits uvicorn lacks: a connection that is slow to send its request head, or
stops sending a body, is closed, so stalled clients cannot hold connections open; and a
request head larger than a cap is answered 431 (httptools itself takes any size)."""

import asyncio
import functools
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8"
    b"\r\ncontent-length: 31\r\nconnection: close\r\n\r\nRequest header fields too large"
)


class TimedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head timeout (from a fresh connection's opening,
    or a request's first byte, until its headers are complete), a body idle timeout
    (between body chunks while the app waits for them) and a head size cap."""

    def __init__(
        self,
        *args: Any,
        header_timeout_s: float,
        body_timeout_s: float,
        max_header_bytes: int,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_s
        self.body_timeout_s = body_timeout_s
        self.max_header_bytes = max_header_bytes
        self._stall: asyncio.TimerHandle | None = None
        self._in_head = True
        self._head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout_s)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            end = data.find(b"\r\n\r\n")  # a chunk may run on into the body
            self._head_bytes += len(data) if end < 0 else end + 4
            if self._head_bytes > self.max_header_bytes:
                self.transport.write(HEAD_TOO_LARGE)
                self.transport.close()
                return
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(self.header_timeout_s)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()
        self._arm(self.body_timeout_s)  # disarmed at once when there is no body

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._arm(self.body_timeout_s)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()
        self._in_head, self._head_bytes = True, 0  # what comes next is the next head

    def _arm(self, delay: float) -> None:
        self._disarm()
        self._stall = self.loop.call_later(delay, self._stalled, delay)

    def _disarm(self) -> None:
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None

    def _stalled(self, delay: float) -> None:
        self._stall = None
        if self.flow is not None and self.flow.read_paused:
            self._arm(delay)  # we stopped reading (the app is behind): not the client's stall
            return
        self.transport.close()


def limited_protocol(
    header_timeout_s: float, body_timeout_s: float, max_header_bytes: int
) -> type[asyncio.Protocol]:
    """The protocol for `uvicorn.run(http=...)`; a partial, so it pickles for --workers."""
    factory = functools.partial(
        TimedHttpProtocol,
        header_timeout_s=header_timeout_s,
        body_timeout_s=body_timeout_s,
        max_header_bytes=max_header_bytes,
    )
    return cast(type[asyncio.Protocol], factory)
