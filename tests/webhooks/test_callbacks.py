"""Client callbacks: the final task object, POSTed to an https receiver (real TLS, checked
against the hostname while the connection is pinned), signed per Standard Webhooks."""

import asyncio
import base64
import hashlib
import hmac
import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import select

from mediagate.app import build_runner, create_app
from mediagate.core.db import Database
from mediagate.core.migrate import upgrade
from mediagate.webhooks.models import CallbackDelivery
from mediagate.webhooks.service import CallbackSender
from mediagate.webhooks.signing import sign
from tests.factories import KeyFactory, generation


def test_signature_matches_the_standard_webhooks_reference_vector() -> None:
    signature = sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, cert: Path, key: Path) -> None:
        super().__init__(("127.0.0.1", 0), ReceiverHandler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.fail_first = 0

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class ReceiverHandler(BaseHTTPRequestHandler):
    server: Receiver

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.server.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        failing = len(self.server.received) <= self.server.fail_first
        self.send_response(500 if failing else 204)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def receiver(tls: tuple[Path, Path]) -> Iterator[Receiver]:
    server = Receiver(*tls)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
async def gateway(make_settings: Any, tls: tuple[Path, Path], receiver: Receiver) -> Any:
    settings = make_settings(
        fetch_ca_file=tls[0],
        fetch_ports=[443, receiver.port],
        callback_retry_base_s=0.01,
        public_base_url="https://gw.example",
    )
    await asyncio.to_thread(upgrade, settings)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


async def finish(
    app: Any, keys: KeyFactory, body: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], Any]:
    key = await keys(credits=20)
    core = app.state.core
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://gw"
    ) as c:
        task_id = (
            await c.post("/api/v1/images/generations", json=body, headers=key.headers)
        ).json()["data"]["task_id"]
        await build_runner(core.db, core.settings, core.catalog, app.state.components).drain()
        task = (await c.get(f"/api/v1/tasks/{task_id}", headers=key.headers)).json()["data"]
        account = (await c.get("/api/v1/account", headers=key.headers)).json()["data"]
    return task, account, app.state.components.callbacks


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The receiver's side, written from the spec (not with our signing code)."""
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    key = base64.b64decode(secret.split("_", 1)[1])
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(s == f"v1,{expected}" for s in headers["webhook-signature"].split(" "))


async def test_the_final_task_object_is_delivered_signed(
    gateway: Any, keys: KeyFactory, receiver: Receiver
) -> None:
    url = f"https://localhost:{receiver.port}/hooks/mediagate"
    task, account, sender = await finish(gateway, keys, generation(callback_url=url, num_images=2))
    assert await sender.deliver_due() == 1
    [(headers, body)] = receiver.received
    assert headers["content-type"] == "application/json" and headers["webhook-id"].startswith(
        "msg_"
    )
    assert account["webhook_secret"].startswith("whsec_")
    assert verify(account["webhook_secret"], headers, body)
    assert not verify("whsec_" + base64.b64encode(b"x" * 24).decode(), headers, body)
    delivered = json.loads(body)
    assert delivered["task_id"] == task["task_id"] and delivered["status"] == "completed"
    assert [i["url"].split("/files/")[1] for i in delivered["output"]["images"]] == [
        i["url"].split("/files/")[1] for i in task["output"]["images"]
    ]
    assert delivered["output"]["images"][0]["url"].startswith("https://gw.example/files/")
    assert await sender.deliver_due() == 0  # delivered once


class CountedWrites(Database):
    """The same database, counting the write units opened on it."""

    writes = 0

    def write(self) -> Any:
        self.writes += 1
        return super().write()


async def test_with_nothing_due_no_write_unit_is_opened(
    gateway: Any, keys: KeyFactory, receiver: Receiver
) -> None:
    """The runner asks after every claim: an empty outbox must not take the write lock."""
    url = f"https://localhost:{receiver.port}/h"
    await finish(gateway, keys, generation(callback_url=url))
    db = CountedWrites(gateway.state.core.settings.db_url)
    try:
        sender = CallbackSender(db, gateway.state.components.fetcher)
        assert await sender.deliver_due() == 1
        assert db.writes == 2  # lease the delivery, then record it
        assert await sender.deliver_due() == 0
        assert db.writes == 2
    finally:
        await db.dispose()
    assert len(receiver.received) == 1


async def test_failed_tasks_are_announced_too(
    gateway: Any, keys: KeyFactory, receiver: Receiver
) -> None:
    _, _, sender = await finish(
        gateway,
        keys,
        generation(prompt="[sandbox:fail]", callback_url=f"https://localhost:{receiver.port}/h"),
    )
    await sender.deliver_due()
    [(_, body)] = receiver.received
    assert json.loads(body)["status"] == "failed" and json.loads(body)["credits"] == 0


async def test_a_failing_receiver_is_retried_with_the_same_id(
    gateway: Any, keys: KeyFactory, receiver: Receiver
) -> None:
    receiver.fail_first = 2
    _, _, sender = await finish(
        gateway, keys, generation(callback_url=f"https://localhost:{receiver.port}/h")
    )
    for _ in range(30):
        await sender.deliver_due()
        if len(receiver.received) == 3:
            break
        await asyncio.sleep(0.05)
    ids = {h["webhook-id"] for h, _ in receiver.received}
    assert len(receiver.received) == 3 and len(ids) == 1
    async with gateway.state.core.db.read() as s:
        [delivery] = (await s.scalars(select(CallbackDelivery))).all()
    assert (delivery.status, delivery.attempts) == ("delivered", 3)


async def test_callback_urls_go_through_the_ssrf_checks(
    gateway: Any, keys: KeyFactory, receiver: Receiver
) -> None:
    _, _, sender = await finish(
        gateway, keys, generation(callback_url="https://169.254.169.254/latest/meta-data")
    )
    await sender.deliver_due()
    async with gateway.state.core.db.read() as s:
        [delivery] = (await s.scalars(select(CallbackDelivery))).all()
    assert delivery.status == "pending" and "non-public" in (delivery.last_error or "")
    assert receiver.received == []


async def test_an_untrusted_certificate_is_not_delivered_to(
    make_settings: Any, keys: KeyFactory, receiver: Receiver
) -> None:
    settings = make_settings(
        fetch_ports=[443, receiver.port]
    )  # no extra CA: self-signed is refused
    await asyncio.to_thread(upgrade, settings)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        _, _, sender = await finish(
            app, keys, generation(callback_url=f"https://localhost:{receiver.port}/h")
        )
        await sender.deliver_due()
        async with app.state.core.db.read() as s:
            [delivery] = (await s.scalars(select(CallbackDelivery))).all()
    assert delivery.status == "pending" and delivery.attempts == 1
    assert receiver.received == []
