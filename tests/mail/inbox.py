"""A real SMTP server (aiosmtpd) on loopback for the tests, and what it received."""

import asyncio
import queue
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

WAIT_S = 10.0  # the longest a test waits for a message that must come; not a timing check


@dataclass(frozen=True)
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None, f"no text/{subtype} part"
        return str(body.get_content())  # type: ignore[attr-defined]

    @property
    def text(self) -> str:
        return self.part("plain")

    def link(self, path: str) -> str:
        """The path and query of the link to `path` in the plain text body."""
        found = re.search(rf"https?://[^/\s]+({re.escape(path)}\S*)", self.text)
        assert found, f"no link to {path} in:\n{self.text}"
        return found.group(1)


class _Collect:
    def __init__(self) -> None:
        self.received: queue.Queue[Received] = queue.Queue()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.received.put(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"


class Inbox:
    def __init__(self, port: int, collect: _Collect) -> None:
        self.port = port
        self._collect = collect

    def settings(self) -> dict[str, Any]:
        """Settings overrides that send the app's mail here."""
        return {
            "smtp_host": "127.0.0.1",
            "smtp_port": self.port,
            "smtp_starttls": False,
            "smtp_from": "mediagate <no-reply@gateway.test>",
        }

    async def next(self) -> Received:
        """The next message received (waits for it to come)."""
        return await asyncio.to_thread(self._collect.received.get, True, WAIT_S)

    def empty(self) -> bool:
        return self._collect.received.empty()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_inbox() -> Iterator[Inbox]:
    collect = _Collect()
    controller = Controller(collect, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield Inbox(controller.port, collect)
    finally:
        controller.stop()
