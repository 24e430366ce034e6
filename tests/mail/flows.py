"""What the email-flow tests share: settings that send the app's mail to the test's
SMTP server (the `inbox` fixture, tests/conftest.py), and waiting for sends to finish."""

from collections.abc import Callable
from typing import Any

from mediagate.core.migrate import upgrade
from mediagate.core.settings import Settings
from tests.mail.inbox import Inbox


def mail_settings(
    make_settings: Callable[..., Settings], inbox: Inbox, **overrides: Any
) -> Settings:
    """Migrated settings mailing to `inbox`; no periodic low-balance check (tests run it)."""
    values = {**inbox.settings(), "low_balance_check_interval_s": 0, **overrides}
    s = make_settings(**values)
    upgrade(s)
    return s


async def settle_mail(app: Any) -> None:
    """Wait until every message the app has posted is handed to the SMTP server."""
    await app.state.outbox.aclose()
