"""The low-balance alert: the threshold set on /profile/email, one mail when a charge
takes the live balance below it, none again until the balance has been back at or above
it; a task's passing hold does not count. Mail is read from a real SMTP server."""

import asyncio
from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from mediagate.accounts import low_balance, users
from mediagate.core.db import Database
from mediagate.core.settings import Settings
from mediagate.ledger import service as ledger
from mediagate.mail.outbox import Outbox, build_outbox
from tests.mail.flows import mail_settings, settle_mail
from tests.mail.inbox import Inbox
from tests.web.helpers import post_form, sign_up

EMAIL = "spender@example.com"
BASE = "https://gw.example"


@pytest.fixture
def check_interval() -> float:
    return 0


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings], inbox: Inbox, check_interval: float
) -> Settings:
    return mail_settings(make_settings, inbox, low_balance_check_interval_s=check_interval)


@pytest.fixture
async def outbox(settings: Settings) -> Any:
    box = build_outbox(settings)
    yield box
    await box.aclose()


async def customer(client: httpx2.AsyncClient, db: Database, inbox: Inbox, threshold: str) -> str:
    """A signed-in user with the alert set on their profile page; their account id."""
    assert (await sign_up(client, EMAIL)).status_code == 303
    assert (await inbox.next()).subject == "Confirm your email address"
    saved = await post_form(client, "/profile/email", "/profile/email/alert", threshold=threshold)
    assert saved.headers["location"] == "/profile/email?alert=1"
    page = await client.get(saved.headers["location"])
    assert "Low-balance alert saved" in page.text and f'value="{threshold}"' in page.text
    return await account_of(db)


async def account_of(db: Database) -> str:
    async with db.read() as session:
        user = await users.by_email(session, EMAIL)
    assert user is not None
    return user.account_id


async def charge(db: Database, account_id: str, amount: int) -> None:
    """A task's charge: a hold, then its capture."""
    async with db.write() as session:
        held = await ledger.hold(session, account_id, "live", amount, task_id=f"t{amount}")
        await ledger.capture(session, held)


async def grant(db: Database, account_id: str, amount: int) -> None:
    async with db.write() as session:
        await ledger.grant(session, account_id, "live", amount, reason="top-up")


async def check(db: Database, outbox: Outbox) -> int:
    sent = await low_balance.check(db, outbox, BASE)
    await outbox.aclose()
    return sent


async def test_one_alert_per_dip_below_the_threshold(
    client: httpx2.AsyncClient, db: Database, inbox: Inbox, outbox: Outbox
) -> None:
    account = await customer(client, db, inbox, "50")
    await grant(db, account, 100)
    assert await check(db, outbox) == 0

    await charge(db, account, 60)  # 40 left: below 50
    assert await check(db, outbox) == 1
    mail = await inbox.next()
    assert mail.recipients == [EMAIL] and mail.subject == "Your credits are running low"
    assert "40 credits, below the 50" in mail.text
    assert f"{BASE}/topup" in mail.text

    await charge(db, account, 30)  # still below: no second mail
    assert await check(db, outbox) == 0
    await grant(db, account, 40)  # 50: back at the threshold, re-armed, nothing mailed
    assert await check(db, outbox) == 0
    assert inbox.empty()
    await charge(db, account, 1)
    assert await check(db, outbox) == 1
    assert "49 credits" in (await inbox.next()).text


async def test_a_hold_alone_sends_nothing_and_a_new_threshold_rearms(
    client: httpx2.AsyncClient, db: Database, inbox: Inbox, outbox: Outbox
) -> None:
    account = await customer(client, db, inbox, "50")
    await grant(db, account, 100)
    async with db.write() as session:  # a task in progress holds 80
        await ledger.hold(session, account, "live", 80, task_id="running")
    assert await check(db, outbox) == 0

    await charge(db, account, 10)  # 90 posted: above
    saved = await post_form(client, "/profile/email", "/profile/email/alert", threshold="95")
    assert saved.status_code == 303
    assert await check(db, outbox) == 1
    assert "below the 95" in (await inbox.next()).text

    # Turned off (blank): no alert however low.
    await post_form(client, "/profile/email", "/profile/email/alert", threshold="")
    await charge(db, account, 5)
    assert await check(db, outbox) == 0
    assert inbox.empty()


async def test_concurrent_checks_mail_one_alert(
    client: httpx2.AsyncClient, db: Database, inbox: Inbox, outbox: Outbox
) -> None:
    account = await customer(client, db, inbox, "10")
    await grant(db, account, 5)
    sent = await asyncio.gather(*(low_balance.check(db, outbox, BASE) for _ in range(3)))
    await outbox.aclose()
    assert sum(sent) == 1
    assert (await inbox.next()).recipients == [EMAIL]
    assert inbox.empty()


@pytest.mark.parametrize("given", ["-5", "ten", "1.5", "0"])
async def test_a_bad_threshold_is_refused_naming_the_field(
    client: httpx2.AsyncClient, inbox: Inbox, given: str
) -> None:
    assert (await sign_up(client, EMAIL)).status_code == 303
    refused = await post_form(client, "/profile/email", "/profile/email/alert", threshold=given)
    assert refused.status_code == 400 and "alert threshold is a whole number" in refused.text


@pytest.mark.parametrize("check_interval", [0.05])
async def test_the_app_checks_on_its_own(
    client: httpx2.AsyncClient, app: Any, db: Database, inbox: Inbox
) -> None:
    assert (await sign_up(client, EMAIL)).status_code == 303
    assert (await inbox.next()).subject == "Confirm your email address"
    account = await account_of(db)
    await grant(db, account, 100)
    await post_form(client, "/profile/email", "/profile/email/alert", threshold="20")
    await charge(db, account, 90)
    mail = await inbox.next()
    assert mail.subject == "Your credits are running low" and mail.recipients == [EMAIL]
    assert "10 credits, below the 20" in mail.text
    await asyncio.sleep(0.2)  # a few more checks: nothing more
    await settle_mail(app)
    assert inbox.empty()
