import logging
from typing import Any

import pytest

from mediagate.core.settings import Settings
from mediagate.mail.messages import compose
from mediagate.mail.outbox import build_outbox
from tests.mail.inbox import serve_inbox


async def test_a_message_reaches_the_smtp_server_as_text_and_html(make_settings: Any) -> None:
    with serve_inbox() as inbox:
        outbox = build_outbox(make_settings(**inbox.settings()))
        assert outbox.configured
        outbox.post(
            compose(
                "reset_password",
                "ana@example.com",
                link="https://gw.example/password/reset?token=a<b",
                minutes=60,
            )
        )
        got = await inbox.next()
        await outbox.aclose()
    assert got.recipients == ["ana@example.com"]
    assert got.sender == "no-reply@gateway.test"
    assert got.subject == "Reset your password"
    assert "https://gw.example/password/reset?token=a<b" in got.text  # plain text: as is
    assert 'href="https://gw.example/password/reset?token=a&lt;b"' in got.part("html")
    assert got.message["From"] == "mediagate <no-reply@gateway.test>"


async def test_without_an_smtp_host_mail_is_logged_not_sent(
    make_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings: Settings = make_settings()
    assert settings.smtp_host is None
    outbox = build_outbox(settings)
    assert not outbox.configured
    with caplog.at_level(logging.WARNING, "mediagate.mail"):
        outbox.post(compose("verify_email", "bo@example.com", link="http://x/verify?t=1", hours=24))
        await outbox.aclose()
    assert "bo@example.com" in caplog.text
    assert "http://x/verify?t=1" in caplog.text


async def test_an_unreachable_smtp_server_is_logged_and_nothing_breaks(
    make_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with serve_inbox() as inbox:
        port = inbox.port
    outbox = build_outbox(make_settings(smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False))
    with caplog.at_level(logging.ERROR, "mediagate.mail"):
        outbox.post(compose("verify_email", "cy@example.com", link="http://x/v", hours=24))
        await outbox.aclose()
    assert "cy@example.com" in caplog.text and "not sent" in caplog.text
