"""The emailed links of sign-in: confirming the address at sign-up (and what waits on it
when the operator requires it), password reset, and changing the address. Each test
reads what a real SMTP server (aiosmtpd) received, takes the link out of the mail and
follows it through the app."""

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx2
import pytest
from sqlalchemy import select, update

from mediagate.accounts import email_tokens, users
from mediagate.accounts.models import Account, EmailToken, User
from mediagate.core.clock import utcnow
from mediagate.core.db import Database
from mediagate.core.settings import Settings
from tests.mail.flows import mail_settings, settle_mail
from tests.mail.inbox import Inbox
from tests.web.helpers import (
    PASSWORD,
    create_key,
    form_token,
    open_link,
    page_token,
    post_form,
    sign_in,
    sign_up,
    submit_sign_up,
)

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def mail_overrides() -> dict[str, Any]:
    """Settings a test changes (parametrize it)."""
    return {}


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings], inbox: Inbox, mail_overrides: dict[str, Any]
) -> Settings:
    return mail_settings(make_settings, inbox, **mail_overrides)


async def user_named(db: Database, email: str) -> User | None:
    async with db.read() as session:
        return await users.by_email(session, email)


async def signed_up(client: httpx2.AsyncClient, inbox: Inbox, email: str) -> str:
    """Sign up and in; the path of the confirmation link mailed."""
    assert (await sign_up(client, email)).status_code == 303
    mail = await inbox.next()
    assert mail.recipients == [email] and mail.subject == "Confirm your email address"
    return mail.link("/verify-email")


async def test_sign_up_mails_a_link_that_confirms_the_address_once(
    client: httpx2.AsyncClient, db: Database, inbox: Inbox, app: Any
) -> None:
    link = await signed_up(client, inbox, "vera@example.com")
    assert (await user_named(db, "vera@example.com")).email_verified_at is None  # type: ignore[union-attr]
    profile = await client.get("/profile/email")
    assert 'data-verified="no"' in profile.text and "Send the link again" in profile.text

    # Opening the page spends nothing (mail scanners fetch links before people do).
    for _ in range(2):
        assert "Confirm" in (await client.get(link)).text
    answer = await open_link(client, link)
    assert answer.status_code == 303 and answer.headers["location"] == "/profile/email?verified=1"
    user = await user_named(db, "vera@example.com")
    assert user is not None and user.email_verified_at is not None
    assert "confirmed" in (await client.get(answer.headers["location"])).text

    again = await client.get(link)
    assert again.status_code == 400 and "used already or has expired" in again.text
    async with db.read() as session:
        rows = list(await session.scalars(select(EmailToken)))
    assert len(rows) == 1 and rows[0].used_at is not None
    assert "verify-email?token=" not in rows[0].id and len(rows[0].id) == 64  # a hash only

    await settle_mail(app)
    assert inbox.empty()


async def test_signing_up_again_with_a_taken_email_mails_nothing_and_answers_the_same(
    client: httpx2.AsyncClient, inbox: Inbox, app: Any
) -> None:
    first = await submit_sign_up(client, "twice@example.com")
    assert (await inbox.next()).subject == "Confirm your email address"
    second = await submit_sign_up(client, "twice@example.com")
    assert (first.status_code, first.headers["location"]) == (
        second.status_code,
        second.headers["location"],
    )
    await settle_mail(app)
    assert inbox.empty()


@pytest.mark.parametrize(
    "mail_overrides",
    [{"require_email_verification": True, "email_links_per_user_per_hour": 2}],
)
async def test_when_required_unconfirmed_users_get_no_live_keys_until_they_confirm(
    client: httpx2.AsyncClient, db: Database, inbox: Inbox
) -> None:
    first_link = await signed_up(client, inbox, "wait@example.com")
    assert (await create_key(client, mode="test")).startswith("aio_test_")  # the sandbox works

    refused = await post_form(client, "/keys", "/keys", name="prod", mode="live")
    assert refused.status_code == 403
    assert "Confirm your email address first" in refused.text
    assert 'action="/verify-email/resend"' in refused.text
    assert "aio_live_" not in refused.text

    # Sent again: a new link, and the first stops working (the newest mail is the one).
    sent = await post_form(client, "/keys", "/verify-email/resend")
    assert sent.headers["location"] == "/profile/email?sent=verify"
    second = await inbox.next()
    assert second.recipients == ["wait@example.com"]
    second_link = second.link("/verify-email")
    assert second_link != first_link
    assert (await client.get(first_link)).status_code == 400

    # Rate limited: two per hour here.
    await post_form(client, "/keys", "/verify-email/resend")
    limited = await post_form(client, "/keys", "/verify-email/resend")
    assert limited.headers["location"].startswith("/profile/email?limited=")
    assert "Too many emails" in (await client.get(limited.headers["location"])).text
    newest = await inbox.next()  # the second resend's; it replaced `second_link`
    assert (await client.get(second_link)).status_code == 400

    assert (await open_link(client, newest.link("/verify-email"))).status_code == 303
    assert (await create_key(client, mode="live")).startswith("aio_live_")


async def test_a_link_for_an_address_the_user_no_longer_has_confirms_nothing(
    client: httpx2.AsyncClient, db: Database, inbox: Inbox
) -> None:
    link = await signed_up(client, inbox, "old@example.com")
    async with db.write() as session:
        await session.execute(
            update(User).where(User.email == "old@example.com").values(email="other@example.com")
        )
    assert (await open_link(client, link)).status_code == 400
    user = await user_named(db, "other@example.com")
    assert user is not None and user.email_verified_at is None


async def forgot(client: httpx2.AsyncClient, email: str) -> httpx2.Response:
    page = await client.get("/password/forgot")
    return await client.post(
        "/password/forgot", data={"email": email, "csrf_token": form_token(page.text)}
    )


async def test_password_reset_by_mail_sets_the_password_and_ends_every_session(
    client: httpx2.AsyncClient, app: Any, db: Database, inbox: Inbox
) -> None:
    await signed_up(client, inbox, "rosa@example.com")
    other_device = httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://gateway.test"
    )
    async with other_device:
        login = await other_device.get("/login")
        assert 'href="/password/forgot"' in login.text  # "Forgot password?"
        assert (await sign_in(other_device, "rosa@example.com")).status_code == 303
        assert (await other_device.get("/dashboard")).status_code == 200

        asked = await forgot(other_device, "Rosa@Example.com")
        assert asked.status_code == 303 and asked.headers["location"] == "/password/forgot?sent=1"
        mail = await inbox.next()
        assert mail.recipients == ["rosa@example.com"] and mail.subject == "Reset your password"
        assert "60 minutes" in mail.text
        link = mail.link("/password/reset")

        # A password the rules refuse: the link still works afterwards.
        weak = await open_link(other_device, link, password="short")
        assert weak.status_code == 400 and "at least 10 characters" in weak.text
        done = await open_link(other_device, link, password=NEW_PASSWORD)
        assert done.status_code == 303 and done.headers["location"] == "/login?reset=1"
        assert "sign in with the new one" in (await other_device.get("/login?reset=1")).text

        # Every session ended: this browser's and the other one's.
        for browser in (client, other_device):
            assert (await browser.get("/dashboard")).headers.get("location") == "/login"
        notice = await inbox.next()
        assert notice.recipients == ["rosa@example.com"]
        assert notice.subject == "Your password was changed"

        assert (await sign_in(client, "rosa@example.com", PASSWORD)).status_code == 400
        assert (await sign_in(client, "rosa@example.com", NEW_PASSWORD)).status_code == 303
        # Single use.
        again = await other_device.get(link)
        assert again.status_code == 400 and "Ask for a new one" in again.text
    user = await user_named(db, "rosa@example.com")
    assert user is not None and user.email_verified_at is not None  # its mail was read


async def test_asking_for_a_reset_answers_the_same_whether_or_not_the_address_exists(
    client: httpx2.AsyncClient, app: Any, db: Database, inbox: Inbox
) -> None:
    await signed_up(client, inbox, "known@example.com")
    known = await forgot(client, "known@example.com")
    unknown = await forgot(client, "nobody@example.com")
    assert known.status_code == unknown.status_code == 303
    assert known.headers["location"] == unknown.headers["location"]
    assert known.content == unknown.content
    page_known = await client.get(known.headers["location"])
    page_unknown = await client.get(unknown.headers["location"])
    assert page_known.text.replace(form_token(page_known.text), "") == page_unknown.text.replace(
        form_token(page_unknown.text), ""
    )
    assert "If an account uses that address" in page_known.text
    await settle_mail(app)
    assert (await inbox.next()).recipients == ["known@example.com"]
    assert inbox.empty()  # nothing for the unknown address
    async with db.read() as session:
        tokens = list(await session.scalars(select(EmailToken.purpose)))
    assert sorted(tokens) == ["reset", "verify"]


@pytest.mark.parametrize("mail_overrides", [{"password_reset_per_email_per_hour": 1}])
async def test_reset_requests_are_rate_limited_alike_for_known_and_unknown_emails(
    client: httpx2.AsyncClient, inbox: Inbox
) -> None:
    await signed_up(client, inbox, "lim@example.com")
    for email in ("lim@example.com", "ghost@example.com"):
        assert (await forgot(client, email)).status_code == 303
        limited = await forgot(client, email)
        assert limited.status_code == 429 and "Retry-After" in limited.headers
        assert "Too many password-reset attempts" in limited.text


async def test_an_expired_reset_link_does_nothing(
    client: httpx2.AsyncClient, db: Database, inbox: Inbox
) -> None:
    await signed_up(client, inbox, "late@example.com")
    await forgot(client, "late@example.com")
    link = (await inbox.next()).link("/password/reset")
    page = await client.get(link)
    assert page.status_code == 200
    async with db.write() as session:
        await session.execute(
            update(EmailToken)
            .where(EmailToken.purpose == "reset")
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    token = link.split("token=", 1)[1]
    answer = await client.post(
        "/password/reset",
        data={"csrf_token": form_token(page.text), "token": token, "password": NEW_PASSWORD},
    )
    assert answer.status_code == 400 and "has expired" in answer.text
    assert (await client.get("/dashboard")).status_code == 200  # still signed in
    await post_form(client, "/dashboard", "/logout")
    assert (await sign_in(client, "late@example.com", NEW_PASSWORD)).status_code == 400


async def test_two_clicks_at_once_on_a_reset_link_succeed_once(
    client: httpx2.AsyncClient, inbox: Inbox
) -> None:
    await signed_up(client, inbox, "twin@example.com")
    await forgot(client, "twin@example.com")
    link = (await inbox.next()).link("/password/reset")
    page = await client.get(link)
    token = link.split("token=", 1)[1]

    async def press(password: str) -> httpx2.Response:
        data = {"csrf_token": form_token(page.text), "token": token, "password": password}
        return await client.post("/password/reset", data=data)

    answers = await asyncio.gather(press(NEW_PASSWORD), press("another good passphrase"))
    assert sorted(a.status_code for a in answers) == [303, 400]
    won = NEW_PASSWORD if answers[0].status_code == 303 else "another good passphrase"
    lost = "another good passphrase" if won == NEW_PASSWORD else NEW_PASSWORD
    assert (await sign_in(client, "twin@example.com", lost)).status_code == 400
    assert (await sign_in(client, "twin@example.com", won)).status_code == 303


async def test_a_token_is_spent_once_by_concurrent_units(db: Database) -> None:
    async with db.write() as session:
        user = await users.create_user(session, "units@example.com", "x")
        token = await email_tokens.issue(session, user.id, "reset", user.email, ttl_s=60)

    async def spend() -> bool:
        async with db.write() as session:
            return await email_tokens.spend(session, token, "reset") is not None

    assert sorted(await asyncio.gather(*(spend() for _ in range(4)))) == [False] * 3 + [True]
    async with db.write() as session:  # another purpose's token is not this one
        other = await email_tokens.issue(session, user.id, "verify", user.email, ttl_s=60)
        assert await email_tokens.spend(session, other, "reset") is None


async def ask_to_change(
    client: httpx2.AsyncClient, new_email: str, password: str = PASSWORD
) -> httpx2.Response:
    return await post_form(
        client, "/profile/email", "/profile/email", email=new_email, password=password
    )


async def test_changing_the_email_waits_for_the_link_mailed_to_the_new_address(
    client: httpx2.AsyncClient, app: Any, db: Database, inbox: Inbox
) -> None:
    await signed_up(client, inbox, "first@example.com")
    asked = await ask_to_change(client, "Second@Example.com")
    assert asked.status_code == 303 and asked.headers["location"] == "/profile/email?sent=change"
    notice = (await client.get(asked.headers["location"])).text
    assert "the change is made when it is opened" in notice
    mail = await inbox.next()
    assert mail.recipients == ["second@example.com"]
    assert mail.subject == "Confirm your new email address"
    assert "first@example.com" in mail.text
    # Nothing changes until the link is used.
    assert await user_named(db, "first@example.com") is not None
    assert await user_named(db, "second@example.com") is None

    done = await open_link(client, mail.link("/profile/email/confirm"))
    assert done.status_code == 303 and done.headers["location"] == "/profile/email?changed=1"
    user = await user_named(db, "second@example.com")
    assert user is not None and user.email_verified_at is not None
    assert await user_named(db, "first@example.com") is None
    async with db.read() as session:  # the account named after the address follows it
        assert (await session.get_one(Account, user.account_id)).name == "second@example.com"
    told = await inbox.next()
    assert told.recipients == ["first@example.com"]
    assert told.subject == "Your email address was changed" and "second@example.com" in told.text
    profile = await client.get("/profile/email")
    assert "<strong data-email>second@example.com</strong>" in profile.text

    await post_form(client, "/dashboard", "/logout")
    assert (await sign_in(client, "first@example.com")).status_code == 400
    assert (await sign_in(client, "second@example.com")).status_code == 303
    await settle_mail(app)
    assert inbox.empty()


async def test_an_address_another_account_has_is_refused_when_asked_and_when_confirmed(
    client: httpx2.AsyncClient, app: Any, db: Database, inbox: Inbox
) -> None:
    await signed_up(client, inbox, "mine@example.com")
    async with db.write() as session:
        await users.create_user(session, "theirs@example.com", "x")
    refused = await ask_to_change(client, "theirs@example.com")
    assert refused.status_code == 409 and "belongs to another account" in refused.text
    wrong = await ask_to_change(client, "free@example.com", password="not my password")
    assert wrong.status_code == 400 and "Wrong password" in wrong.text
    same = await ask_to_change(client, "mine@example.com")
    assert same.status_code == 400 and "your address already" in same.text
    bad = await ask_to_change(client, "not an address")
    assert bad.status_code == 400 and "valid email" in bad.text
    await settle_mail(app)
    assert inbox.empty()

    # Asked while free, taken before the link is used: refused then, nothing changed.
    assert (await ask_to_change(client, "free@example.com")).status_code == 303
    link = (await inbox.next()).link("/profile/email/confirm")
    async with db.write() as session:
        await users.create_user(session, "free@example.com", "x")
    late = await open_link(client, link)
    assert late.status_code == 409 and "belongs to another account now" in late.text
    assert await user_named(db, "mine@example.com") is not None


async def test_the_profile_page_needs_a_session_and_its_forms_a_token(
    client: httpx2.AsyncClient, inbox: Inbox
) -> None:
    assert (await client.get("/profile/email")).headers.get("location") == "/login"
    await signed_up(client, inbox, "csrf@example.com")
    token = page_token((await client.get("/profile/email")).text)
    forged = await client.post(
        "/profile/email", data={"email": "x@example.com", "password": PASSWORD}
    )
    assert forged.status_code == 403
    assert token  # the real form carries one
