"""The benchmark load generator's accounting, against a tiny real HTTP server on loopback:
only 2xx answers are throughput, a run that saw any other answer or an error is not clean,
and the open loop counts latency from each request's due time."""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.__main__ import verdict
from bench.harness import load, repeated

STALL_S = 0.5


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "TinyServer"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/drop":  # no answer at all: the connection just closes
            self.close_connection = True
            return
        if self.path == "/stall-once":
            with self.server.lock:
                first, self.server.stalled = not self.server.stalled, True
            if first:
                time.sleep(STALL_S)
        status = 404 if self.path == "/missing" else 200
        body = b'{"ok": true}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class TinyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.stalled = False


@contextmanager
def tiny_server() -> Iterator[str]:
    server = TinyServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def run(base: str, paths: list[str], tmp_path: Path, **options: Any) -> dict[str, Any]:
    return load(f"{base}/", paths=paths, folder=tmp_path, **options)


def test_only_2xx_answers_count_as_throughput(tmp_path: Path) -> None:
    with tiny_server() as base:
        r = run(base, ["/ok", "/missing"], tmp_path, concurrency=1, requests=200)
    assert r["sent"] == 200
    assert r["ok"] == 100 and r["non_2xx"] == 100 and r["errors"] == 0
    assert r["statuses"] == {"200": 100, "404": 100}
    assert r["rps"] == round(100 / r["seconds"], 1)  # the 404s are not throughput
    assert r["clean"] is False
    assert verdict(True, r).startswith("**missed**")  # whatever the figure
    assert "100 non-2xx {'404': 100}" in verdict(True, r)


def test_a_run_with_only_2xx_and_no_errors_is_clean(tmp_path: Path) -> None:
    with tiny_server() as base:
        r = run(base, ["/ok"], tmp_path, concurrency=4, requests=200)
    assert r["ok"] == 200 and r["non_2xx"] == 0 and r["errors"] == 0
    assert r["clean"] is True and r["rps"] > 0
    assert verdict(True, r) == "met" and verdict(False, r) == "**missed**"


def test_a_failed_exchange_is_an_error_and_spoils_the_verdict(tmp_path: Path) -> None:
    with tiny_server() as base:
        r = run(base, ["/ok", "/drop"], tmp_path, concurrency=1, requests=20)
    assert r["ok"] == 10 and r["errors"] == 10 and r["non_2xx"] == 0
    assert r["clean"] is False
    assert "10 errors" in verdict(True, r)


def test_repeated_runs_give_median_and_range_and_add_up_the_failures(tmp_path: Path) -> None:
    with tiny_server() as base:
        runs = [
            run(base, ["/ok"], tmp_path, concurrency=2, requests=100),
            run(base, ["/ok", "/missing"], tmp_path, concurrency=2, requests=100),
            run(base, ["/ok"], tmp_path, concurrency=2, requests=100),
        ]
    merged = repeated(runs)
    rates = sorted(r["rps"] for r in runs)
    assert merged["rps"] == rates[1] and merged["rps_range"] == [rates[0], rates[2]]
    assert merged["ok"] == 250 and merged["non_2xx"] == 50
    assert merged["clean"] is False and len(merged["runs"]) == 3


def test_the_open_loop_counts_latency_from_the_due_time(tmp_path: Path) -> None:
    """One answer stalls 0.5 s on the only connection. The closed loop waits with it and
    sees one slow request; the open loop keeps the requests due every 5 ms and counts each
    one's wait for the connection, so about half of the answers are late."""
    with tiny_server() as base:
        closed = run(base, ["/stall-once"], tmp_path, concurrency=1, requests=200, duration=30)
    with tiny_server() as base:
        opened = run(
            base, ["/stall-once"], tmp_path, concurrency=1, requests=200, rate=200, duration=30
        )
    assert closed["clean"] and opened["clean"]
    assert closed["mode"] == "closed" and opened["mode"] == "open"
    assert closed["max_ms"] >= STALL_S * 1000 and opened["max_ms"] >= STALL_S * 1000
    assert closed["p90_ms"] < 100  # the closed loop hides the stall in one request
    assert opened["p50_ms"] >= 50  # the requests due during the stall waited for it
    assert opened["send_behind_max_ms"] >= STALL_S * 1000 * 0.8
    assert opened["seconds"] >= 200 / 200  # paced: 200 requests at 200 per second
