"""Hostile clients against a real `mediagate serve`, over raw sockets: stalled connections
are dropped, the connection cap answers 503, and pathological bodies in progress neither
stall `/healthz` nor grow the server's memory."""

import asyncio
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.e2e.procs import (
    cli,
    create_key,
    environment,
    free_port,
    process,
    query,
    wait_for_http,
)
from tests.web.helpers import submit_sign_up

pytestmark = pytest.mark.e2e

STALL_S = 1
DROPPED_WITHIN_S = 10.0  # coarse: "dropped" versus "kept open for the default 15-30 s+"
MAX_CONNECTIONS = 4


@pytest.fixture(scope="module")
def strict(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[dict[str, Any]]:
    """A server with second-long head and body timeouts and a tiny connection cap."""
    data = tmp_path_factory.mktemp("e2e-limits") / "data"
    env = environment(
        data,
        module_database_url,
        header_timeout_s=STALL_S,
        max_header_bytes=16 * 1024,
        body_timeout_s=STALL_S,
        max_connections=MAX_CONNECTIONS,
    )
    port = free_port()
    log = data.parent / "serve.log"
    with process(env, "serve", "--port", str(port), "--no-runner", log=log) as proc:
        wait_for_http(f"http://127.0.0.1:{port}", proc, log)
        yield {"port": port, "env": env}


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=DROPPED_WITHIN_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closes the connection (within DROPPED_WITHIN_S)."""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.mark.parametrize(
    "sent",
    [
        b"",  # a fresh connection that never says anything
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n",  # a head that never ends
    ],
)
def test_finding_11_a_stalled_request_head_is_dropped(strict: dict[str, Any], sent: bytes) -> None:
    with connect(strict["port"]) as sock:
        sock.sendall(sent)
        assert closed_by_server(sock)


def test_finding_11_a_stalled_request_body_is_dropped(strict: dict[str, Any]) -> None:
    with connect(strict["port"]) as sock:
        sock.sendall(
            b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
            b"\r\nContent-Length: 1000\r\n\r\nemail=a%40b.c"
        )
        assert closed_by_server(sock)


@pytest.mark.parametrize(
    "headers",
    [
        [b"X-Big: " + b"a" * 40_000 + b"\r\n\r\n"],  # complete, in one go
        [b"X-Big: " + b"a" * 65536 + b"\r\n"] * 64,  # 4 MiB that never ends
    ],
    ids=["complete", "endless"],
)
def test_finding_11_a_request_head_past_its_cap_is_answered_431(
    strict: dict[str, Any], headers: list[bytes]
) -> None:
    with connect(strict["port"]) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        try:
            for header in headers:  # unless the server stops us first
                sock.sendall(header)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]


def test_finding_11_a_connection_past_the_cap_is_answered_503(strict: dict[str, Any]) -> None:
    held = [connect(strict["port"]) for _ in range(MAX_CONNECTIONS)]
    try:
        with connect(strict["port"]) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)  # the server notices the closed ones
    assert httpx2.get(f"http://127.0.0.1:{strict['port']}/healthz").status_code == 200


# The combined check of issue 13's "Done when".


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def raw_post(port: int, head: bytes, pieces: Iterator[bytes]) -> bytes:
    """Send a request head and body pieces as fast as the server takes them, reading all
    the while; the status line the server answers (it may answer and close long before
    the body is all sent)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = asyncio.ensure_future(reader.readline())
    try:
        writer.write(head)
        for piece in pieces:
            if answer.done():
                break
            writer.write(piece)
            await writer.drain()
    except ConnectionError:
        pass
    try:
        return await asyncio.wait_for(answer, 30)
    except ConnectionError:
        return b"(reset before an answer)"
    finally:
        writer.close()


async def tiny_parts_upload(port: int, key: str) -> bytes:
    """A 10 MB multipart upload of ~150,000 tiny parts (finding 1)."""
    part = b'--b\r\nContent-Disposition: form-data; name="x"\r\n\r\ny\r\n'
    body = part * (10_000_000 // len(part)) + b"--b--\r\n"
    head = (
        f"POST /api/v1/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    return await raw_post(port, head, (body[i : i + 65536] for i in range(0, len(body), 65536)))


async def chunked_form_flood(port: int, key: str) -> bytes:
    """A 300 MiB chunked form POST to /login, no Content-Length (finding 2)."""
    chunk = b"a" * (1024 * 1024)
    framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    head = (
        b"POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n\r\n"
    )
    return await raw_post(port, head, (framed for _ in range(300)))


async def parallel_sign_ups(port: int, key: str) -> bytes:
    """Eight sign-ups at once (finding 3): argon2 on the server's hashing threads."""

    async def one(i: int) -> int:
        async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            return (await submit_sign_up(c, f"crowd{i}@x.example")).status_code

    statuses = await asyncio.gather(*(one(i) for i in range(8)))
    return f"sign-ups {sorted(set(statuses))}".encode()


Attack = Callable[[int, str], Awaitable[bytes]]

# The attacks running at once.
CONCURRENT_ATTACKS: list[tuple[str, Attack, bytes]] = [
    ("10 MB multipart upload of tiny parts", tiny_parts_upload, b"HTTP/1.1 400"),
    ("300 MiB chunked form POST", chunked_form_flood, b"HTTP/1.1 413"),
    ("eight parallel sign-ups", parallel_sign_ups, b"sign-ups [303]"),
]


async def test_finding_1_2_healthz_answers_and_memory_holds_while_attacked(
    tmp_path: Path, database_url: str | None
) -> None:
    env = environment(tmp_path / "data", database_url)
    cli(env, "migrate")
    key = create_key(env, account="attacker", credits=0)
    port = free_port()
    log = tmp_path / "serve.log"
    with process(env, "serve", "--port", str(port), "--no-runner", log=log) as proc:
        base = f"http://127.0.0.1:{port}"
        await asyncio.to_thread(wait_for_http, base, proc, log)
        async with httpx2.AsyncClient(base_url=base, timeout=30) as client:
            await client.get("/healthz")
            before = rss_kib(proc.pid)
            answers, slowest, peak = await attacked(proc, client, port, key)
        assert proc.poll() is None
    for (what, _, expected), answer in zip(CONCURRENT_ATTACKS, answers, strict=True):
        assert answer.startswith(expected), f"{what}: {answer!r}"
    assert slowest < 1.0, f"/healthz took {slowest:.2f} s during the attacks"
    assert peak - before < 50 * 1024, f"RSS grew by {(peak - before) // 1024} MiB"
    [(users,)] = await asyncio.to_thread(query, env, "SELECT count(*) FROM users")
    assert users == 8  # the sign-ups were real work, not refused early


async def attacked(
    proc: subprocess.Popen[bytes], client: httpx2.AsyncClient, port: int, key: str
) -> tuple[list[bytes], float, int]:
    """Run every attack at once; meanwhile probe /healthz and sample the server's RSS."""
    attacks = asyncio.gather(*(attack(port, key) for _, attack, _ in CONCURRENT_ATTACKS))
    slowest = 0.0
    peak = rss_kib(proc.pid)
    probes = 0
    while not attacks.done() or probes < 5:
        started = time.monotonic()
        assert (await client.get("/healthz")).status_code == 200
        slowest = max(slowest, time.monotonic() - started)
        peak = max(peak, rss_kib(proc.pid))
        probes += 1
        await asyncio.sleep(0.05)
    return list(await attacks), slowest, peak
