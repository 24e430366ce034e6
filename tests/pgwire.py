"""A real TCP proxy on loopback in front of PostgreSQL that counts round trips.

A round trip is one turn of the conversation: the client sends (one or more messages,
e.g. asyncpg's Bind/Execute/Sync in one write) and then waits for the server. The proxy
counts each change of direction from server to client, per connection, and reads the
frontend messages (PostgreSQL protocol v3: https://www.postgresql.org/docs/current/
protocol-message-formats.html) to record which statements each turn carried: the text of
a simple Query ('Q') or of a Parse ('P'), and for a Bind ('B') of a named prepared
statement, the text that statement was parsed from. Nothing is changed on the way.
"""

import asyncio
import struct
from dataclasses import dataclass, field

SSL_REQUEST = 80877103


@dataclass
class Turn:
    """One client turn of one connection: the statements it carried (may be none: a
    Sync, a Terminate)."""

    connection: int
    statements: list[str] = field(default_factory=list)


@dataclass
class _Conn:
    index: int
    buffer: bytes = b""
    started: bool = False
    client_last: bool = False
    names: dict[str, str] = field(default_factory=dict)


class RoundTripProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.turns: list[Turn] = []
        self._server: asyncio.Server | None = None
        self._count = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()

    def reset(self) -> None:
        self.turns.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._count += 1
        conn = _Conn(self._count)
        for coro in (self._client(conn, reader, up_writer), self._backend(conn, up_reader, writer)):
            task = asyncio.ensure_future(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _client(
        self, conn: _Conn, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while data := await reader.read(65536):
                if not conn.client_last:
                    self.turns.append(Turn(conn.index))
                    conn.client_last = True
                self._parse(conn, data)
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def _backend(
        self, conn: _Conn, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while data := await reader.read(65536):
                conn.client_last = False
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    def _parse(self, conn: _Conn, data: bytes) -> None:
        conn.buffer += data
        turn = self.turns[-1]
        while True:
            if not conn.started:  # untyped: SSLRequest, StartupMessage
                if len(conn.buffer) < 8:
                    return
                (length, code) = struct.unpack("!ii", conn.buffer[:8])
                if len(conn.buffer) < length:
                    return
                conn.buffer = conn.buffer[length:]
                conn.started = code != SSL_REQUEST
                continue
            if len(conn.buffer) < 5:
                return
            kind = conn.buffer[:1]
            (length,) = struct.unpack("!i", conn.buffer[1:5])
            if len(conn.buffer) < 1 + length:
                return
            body = conn.buffer[5 : 1 + length]
            conn.buffer = conn.buffer[1 + length :]
            if kind == b"Q":
                turn.statements.append(body.split(b"\0", 1)[0].decode())
            elif kind == b"P":
                name, rest = body.split(b"\0", 1)
                sql = rest.split(b"\0", 1)[0].decode()
                conn.names[name.decode()] = sql
                turn.statements.append(sql)
            elif kind == b"B":
                statement = body.split(b"\0", 2)[1].decode()
                turn.statements.append(conn.names.get(statement, f"<unnamed {statement}>"))
