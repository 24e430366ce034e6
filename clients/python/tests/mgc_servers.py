"""The client tests' servers: the real mediagate server's address, and a real HTTP proxy
on loopback in front of it that loses or alters answers on request (how the retry and
polling paths of the client are driven without mocks)."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx2


@dataclass(frozen=True)
class Server:
    """A running `mediagate serve`: its base URL and the environment it was started with."""

    base: str
    env: dict[str, str]


HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class Faults:
    """What the proxy does to the next requests."""

    lose_submits: int = 0
    """Forward this many submits, then answer 502 instead of the server's answer."""
    strip_prefer: bool = False
    """Drop `Prefer` from requests: the server then answers at once, as one without waits."""
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    """(method, path, headers) of every request, in order."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "FaultyProxy"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._forward()

    def do_POST(self) -> None:
        self._forward()

    def _forward(self) -> None:
        faults = self.server.faults
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        faults.seen.append((self.command, self.path, {k.lower(): v for k, v in headers.items()}))
        if faults.strip_prefer:
            headers = {k: v for k, v in headers.items() if k.lower() != "prefer"}
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        answer = self.server.upstream.request(
            self.command, self.path, headers=headers, content=body, timeout=90
        )
        is_submit = self.command == "POST" and self.path.endswith("/generations")
        if is_submit and faults.lose_submits > 0:
            faults.lose_submits -= 1
            self._send(502, {"content-type": "text/plain"}, b"bad gateway (answer lost)")
            return
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
        kept.pop("content-encoding", None)
        self._send(answer.status_code, kept, answer.content)

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class FaultyProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = httpx2.Client(base_url=upstream)
        self.faults = Faults()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def faulty_proxy(upstream: str) -> Iterator[FaultyProxy]:
    proxy = FaultyProxy(upstream)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
        proxy.upstream.close()
