"""A real HTTP server on loopback that serves images, and misbehaves on request."""

import gzip
import io
import re
import struct
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from PIL import Image

IMAGE_PATH = re.compile(r"^/img/(\d+)x(\d+)\.(png|jpg|webp)$")
FORMATS = {
    "png": ("PNG", "image/png"),
    "jpg": ("JPEG", "image/jpeg"),
    "webp": ("WEBP", "image/webp"),
}


def make_image(
    width: int, height: int, fmt: str = "png", color: tuple[int, int, int] = (200, 80, 40)
) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format=FORMATS[fmt][0])
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with a token of pixel data: enough to
    open (Pillow stops at the first IDAT), never enough to decode."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "ImageServer"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if match := IMAGE_PATH.match(parts.path):
            width, height, ext = int(match[1]), int(match[2]), match[3]
            # ?rgb=30,60,200 gives another flat colour (e.g. a last frame unlike the first).
            rgb = tuple(int(c) for c in query["rgb"].split(",")) if "rgb" in query else None
            color = (rgb[0], rgb[1], rgb[2]) if rgb else (200, 80, 40)
            self._send(200, make_image(width, height, ext, color), FORMATS[ext][1])
        elif parts.path == "/header-only.png":
            self._send(200, png_header_only(int(query["w"]), int(query["h"])), "image/png")
        elif parts.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", query["to"])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif parts.path == "/html-as-png":
            self._send(200, b"<html>not an image</html>", "image/png")
        elif parts.path == "/slow":
            self._drip()
        elif parts.path == "/endless":
            self._endless()
        elif parts.path == "/stream":
            self._stream(int(query["bytes"]), declare=query.get("declare") == "1")
        elif parts.path == "/huge-length":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(10**12))
            self.end_headers()
            self._write(b"\x89PNG\r\n\x1a\n")
        elif parts.path == "/lying-length":
            # Claims a small body, then keeps sending: the client must stop at the claim.
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", "100")
            self.end_headers()
            for _ in range(2000):
                if not self._write(b"\0" * 65536):
                    break
        elif parts.path == "/gzip-bomb":
            body = gzip.compress(b"\0" * (int(query.get("mb", "50")) * 1_000_000), compresslevel=9)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self._write(body)
        else:
            self._send(404, b"not found", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self._write(body)

    def _write(self, data: bytes) -> bool:
        try:
            self.wfile.write(data)
            self.wfile.flush()
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def _drip(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", "1000000")
        self.end_headers()
        for _ in range(60):  # bounded: one byte a second for at most a minute
            if not self._write(b"\x89"):
                return
            time.sleep(1)

    def _endless(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"\0" * 65536
        framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        for _ in range(20_000):  # bounded: about 1.3 GB at most
            if not self._write(framed):
                return

    def _stream(self, size: int, *, declare: bool) -> None:
        """`size` bytes of a repeating pattern, generated as they go (never built whole),
        chunked unless `declare`; what was sent is counted in `server.sent`."""
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        if declare:
            self.send_header("Content-Length", str(size))
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = bytes(range(256)) * 256
        left = size
        while left > 0:
            piece = chunk[: min(left, len(chunk))]
            framed = piece if declare else f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
            if not self._write(framed):
                return
            self.server.sent[self.path] = self.server.sent.get(self.path, 0) + len(piece)
            left -= len(piece)
        if not declare:
            self._write(b"0\r\n\r\n")


class ImageServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.hits: list[str] = []
        self.sent: dict[str, int] = {}

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients hanging up on the misbehaving routes is the point; anything else is a bug."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def url(self, path: str) -> str:
        return f"{self.base}{path}"


@contextmanager
def image_server() -> Iterator[ImageServer]:
    server = ImageServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
