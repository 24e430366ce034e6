"""A small HTTP/1.1 load generator, run as its own process so it never shares an event
loop with the server it measures: keep-alive connections, bounded by a request count and
a time limit. Prints one JSON object.

Two modes:

- closed loop (default): `--concurrency` connections, each sends its next request when
  the last one is answered. Simple, but a stalled server also stalls the senders, so a
  stall hides in fewer requests rather than in the latencies.
- open loop (`--rate R`): requests are due at a fixed rate, R per second, whatever the
  server does; `--concurrency` connections send them. A request's latency is counted
  from the time it was due, not from when a free connection got to send it, so a stall
  shows in the latency of every request that was due during it.

Only 2xx answers count as throughput (`ok`, `rps`) and in the latency percentiles; every
other answer is counted in `non_2xx` (by status in `statuses`), every failed exchange in
`errors`, and `clean` is true only when both are zero.

    python -m bench.loadgen --url http://127.0.0.1:8000/api/v1/tasks/x --concurrency 32 \
        --requests 5000 --duration 20 [--rate 500] [--method POST --body-file b.json]
        [--header 'K: V'] [--paths-file paths.txt]   # one path per line, used round-robin
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

GRACE_S = 30.0
"""How long a run waits, after its time limit, for requests still queued or in flight;
what is not answered by then counts as an error."""


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
        self.requests = args.requests
        self.duration = args.duration
        self.rate: float | None = args.rate
        self.latencies: list[float] = []
        """Seconds, of 2xx answers only."""
        self.statuses: Counter[int] = Counter()
        self.errors = 0
        self.sent = 0
        self.started = 0.0
        self.behind_s = 0.0
        """Open loop: the most a request's send lagged behind its due time."""

    def request(self) -> bytes:
        path = self.paths[self.sent % len(self.paths)]
        self.sent += 1
        head = (
            f"{self.method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"{self.headers}Content-Length: {len(self.body)}\r\n"
            "Content-Type: application/json\r\n\r\n"
        )
        return head.encode() + self.body

    def next_due(self) -> float | None:
        """The time the next request is due (perf_counter), or None when the run is over."""
        if self.sent >= self.requests:
            return None
        if self.rate is None:  # closed loop: now, until the time limit
            now = time.perf_counter()
            return now if now < self.started + self.duration else None
        due = self.started + self.sent / self.rate
        return due if due < self.started + self.duration else None

    async def worker(self) -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while (due := self.next_due()) is not None:
            message = self.request()
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                self.behind_s = max(self.behind_s, -delay)
            try:
                if writer is None or reader is None:
                    reader, writer = await asyncio.open_connection(self.host, self.port)
                writer.write(message)
                status, close = await read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                self.errors += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                continue
            # From the due time: in the open loop, waiting for a free connection counts.
            latency = time.perf_counter() - due
            self.statuses[status] += 1
            if 200 <= status < 300:
                self.latencies.append(latency)
            if close:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    async def run(self, concurrency: int) -> dict[str, object]:
        self.started = time.perf_counter()
        workers = [asyncio.create_task(self.worker()) for _ in range(concurrency)]
        _, pending = await asyncio.wait(workers, timeout=self.duration + GRACE_S)
        for task in pending:  # past the grace: what is still unanswered failed
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        elapsed = time.perf_counter() - self.started
        unanswered = self.sent - sum(self.statuses.values()) - self.errors
        self.errors += max(0, unanswered)
        return self.summary(elapsed, concurrency)

    def summary(self, elapsed: float, concurrency: int) -> dict[str, object]:
        ms = [x * 1000 for x in self.latencies]
        ok = len(ms)
        non_2xx = sum(n for status, n in self.statuses.items() if not 200 <= status < 300)
        return {
            "mode": "closed" if self.rate is None else "open",
            "rate": self.rate,
            "sent": self.sent,
            "ok": ok,
            "non_2xx": non_2xx,
            "errors": self.errors,
            "clean": non_2xx == 0 and self.errors == 0 and ok > 0,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "seconds": round(elapsed, 3),
            "rps": round(ok / elapsed, 1) if elapsed else 0.0,
            "p50_ms": round(percentile(ms, 0.50), 2),
            "p90_ms": round(percentile(ms, 0.90), 2),
            "p99_ms": round(percentile(ms, 0.99), 2),
            "max_ms": round(max(ms), 2) if ms else 0.0,
            "mean_ms": round(statistics.fmean(ms), 2) if ms else 0.0,
            "send_behind_max_ms": round(self.behind_s * 1000, 2),
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


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body-file")
    parser.add_argument("--paths-file")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument(
        "--rate", type=float, help="open loop: requests due per second (default: closed loop)"
    )
    return parser


def main() -> None:
    args = parser().parse_args()
    if args.rate is not None and args.rate <= 0:
        raise SystemExit("--rate must be positive")
    result = uvloop.run(Load(args).run(args.concurrency))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
