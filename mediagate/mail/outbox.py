"""Sending email: through SMTP (aiosmtplib) when MEDIAGATE_SMTP_HOST is set, else written
to the log (development), in the background so no answer waits on (or is timed by) a mail
server. A failed send is logged; the flows that mail links let the user ask again."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import aiosmtplib
from fastapi import Request

from mediagate.core.settings import Settings
from mediagate.mail.messages import Message

log = logging.getLogger("mediagate.mail")


class Transport(Protocol):
    async def deliver(self, message: Message) -> None: ...


class SmtpTransport:
    def __init__(self, settings: Settings) -> None:
        assert settings.smtp_host is not None
        self.settings = settings

    async def deliver(self, message: Message) -> None:
        s = self.settings
        await aiosmtplib.send(
            message.as_email(s.smtp_from),
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username,
            password=s.smtp_password,
            use_tls=s.smtp_tls,
            start_tls=s.smtp_starttls and not s.smtp_tls,
            timeout=s.smtp_timeout_s,
        )


class LogTransport:
    """No SMTP server configured: the message goes to the log, links and all, so a
    developer can follow them."""

    async def deliver(self, message: Message) -> None:
        log.warning(
            "email not sent (no MEDIAGATE_SMTP_HOST): to %s, subject %r\n%s",
            message.to,
            message.subject,
            message.text,
        )


class Outbox:
    def __init__(self, transport: Transport, *, configured: bool) -> None:
        self.transport = transport
        self.configured = configured
        """Whether mail really leaves (SMTP is set up); pages say so when it does not."""
        self._sending: set[asyncio.Task[None]] = set()

    def post(self, message: Message) -> None:
        """Send `message` in the background."""
        task = asyncio.create_task(self._send(message), name="mail")
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    def post_composed(self, compose: Callable[[], Awaitable[Message | None]]) -> None:
        """Compose a message (reads, a token written) and send it, all in the background;
        None from `compose`: nothing to send. For answers that must not reveal, even by
        their timing, whether there was anything to send (a password reset)."""
        task = asyncio.create_task(self._compose_and_send(compose), name="mail")
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _compose_and_send(self, compose: Callable[[], Awaitable[Message | None]]) -> None:
        try:
            message = await compose()
        except Exception:
            log.exception("an email could not be composed")
            return
        if message is not None:
            await self._send(message)

    async def _send(self, message: Message) -> None:
        try:
            await self.transport.deliver(message)
        except (aiosmtplib.SMTPException, OSError) as exc:
            log.error("email to %s (%r) not sent: %s", message.to, message.subject, exc)

    async def aclose(self) -> None:
        """Let the messages on their way finish (at shutdown)."""
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)


def build_outbox(settings: Settings) -> Outbox:
    if settings.smtp_host:
        return Outbox(SmtpTransport(settings), configured=True)
    return Outbox(LogTransport(), configured=False)


def outbox_of(request: Request) -> Outbox:
    outbox: Outbox = request.app.state.outbox
    return outbox
