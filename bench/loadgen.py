"""A small HTTP/1.1 load generator, run as its own process so it never shares an event
loop with the server it measures: keep-alive connections, a fixed concurrency, bounded
by a request count and a time limit. Prints one JSON object.

    python -m bench.loadgen --url http://127.0.0.1:8000/api/v1/tasks/x --concurrency 32 \
        --requests 5000 --duration 20 [--method POST --body-file b.json] [--header 'K: V']
        [--paths-file paths.txt]   # one path per line, used round-robin
"""

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import uvloop


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Load:
    def __init__(self, args: argparse.Namespace) -> None:
        url = urlsplit(args.url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.paths = (
            [
                line.strip()
                for line in Path(args.paths_file).read_text().splitlines()
                if line.strip()
            ]
            if args.paths_file
            else [url.path + (f"?{url.query}" if url.query else "")]
        )
        self.method = args.method
        self.body = Path(args.body_file).read_bytes() if args.body_file else b""
        self.headers = "".join(f"{h}\r\n" for h in args.header)
        self.remaining = args.requests
        self.deadline = time.monotonic() + args.duration
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.errors = 0
        self.sent = 0

    def request(self) -> bytes:
        path = self.paths[self.sent % len(self.paths)]
        self.sent += 1
        head = (
            f"{self.method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"{self.headers}Content-Length: {len(self.body)}\r\n"
            "Content-Type: application/json\r\n\r\n"
        )
        return head.encode() + self.body

    async def worker(self) -> None:
        reader = writer = None
        while self.remaining > 0 and time.monotonic() < self.deadline:
            self.remaining -= 1
            started = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(self.host, self.port)
                writer.write(self.request())
                status, close = await read_response(reader)  # type: ignore[arg-type]
            except (OSError, asyncio.IncompleteReadError, ValueError):
                self.errors += 1
                writer = None
                continue
            self.latencies.append(time.perf_counter() - started)
            self.statuses[status] += 1
            if close:
                writer.close()
                writer = None
        if writer is not None:
            writer.close()

    async def run(self, concurrency: int) -> dict[str, object]:
        started = time.perf_counter()
        await asyncio.gather(*(self.worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        ms = [x * 1000 for x in self.latencies]
        return {
            "requests": len(ms),
            "errors": self.errors,
            "statuses": dict(self.statuses),
            "seconds": round(elapsed, 3),
            "rps": round(len(ms) / elapsed, 1) if elapsed else 0.0,
            "p50_ms": round(percentile(ms, 0.50), 2),
            "p90_ms": round(percentile(ms, 0.90), 2),
            "p99_ms": round(percentile(ms, 0.99), 2),
            "mean_ms": round(statistics.fmean(ms), 2) if ms else 0.0,
            "concurrency": concurrency,
        }


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, close, chunked = 0, False, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value.strip().lower() == "close":
            close = True
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.readexactly(length)
    return status, close


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body-file")
    parser.add_argument("--paths-file")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--duration", type=float, default=20.0)
    args = parser.parse_args()
    result = uvloop.run(Load(args).run(args.concurrency))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
