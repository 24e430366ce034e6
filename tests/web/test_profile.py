"""The profile page: display name, password change, the signed-in sessions list."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx2
from sqlalchemy import select, update

from mediagate.core.clock import utcnow
from mediagate.core.db import Database
from mediagate.web.models import WebSession
from tests.web.helpers import PASSWORD, post_form, sign_in, sign_up

NEW_PASSWORD = "a brand new passphrase"


@asynccontextmanager
async def browser(app: Any, agent: str) -> AsyncIterator[httpx2.AsyncClient]:
    transport = httpx2.ASGITransport(app=app, client=("203.0.113.7", 5000))
    async with httpx2.AsyncClient(
        transport=transport, base_url="http://gateway.test", headers={"User-Agent": agent}
    ) as c:
        yield c


async def test_profile_shows_the_email_and_the_display_name_goes_in_the_header(
    client: httpx2.AsyncClient,
) -> None:
    await sign_up(client, "name@example.com")
    page = (await client.get("/profile")).text
    assert "data-email>name@example.com<" in page
    assert 'href="/profile/email"' in page and "Email &amp; alerts" in page
    assert 'href="/profile">Profile<' in (await client.get("/dashboard")).text
    saved = await post_form(client, "/profile", "/profile/name", display_name="  Ada   L. ")
    assert saved.status_code == 303
    assert "data-viewer>Ada L.<" in (await client.get("/dashboard")).text
    long = await post_form(client, "/profile", "/profile/name", display_name="x" * 101)
    assert long.status_code == 400 and "at most 100 characters" in long.text
    assert "data-viewer>Ada L.<" in (await client.get("/dashboard")).text  # unchanged
    cleared = await post_form(client, "/profile", "/profile/name", display_name="")
    assert cleared.status_code == 303
    assert "data-viewer>name@example.com<" in (await client.get("/dashboard")).text


async def test_profile_needs_a_session_and_its_token(client: httpx2.AsyncClient) -> None:
    answer = await client.get("/profile")
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    await sign_up(client, "token@example.com")
    forged = await client.post("/profile/name", data={"display_name": "x", "csrf_token": "no"})
    assert forged.status_code == 403


async def test_password_change_needs_the_current_one_and_ends_only_the_other_sessions(
    app: Any,
) -> None:
    async with browser(app, "Laptop Firefox") as laptop, browser(app, "Phone Safari") as phone:
        await sign_up(laptop, "pw@example.com")
        assert (await sign_in(phone, "pw@example.com")).status_code == 303

        wrong = await post_form(
            laptop,
            "/profile",
            "/profile/password",
            current_password="not my password",
            new_password=NEW_PASSWORD,
        )
        assert wrong.status_code == 400 and "current password is not right" in wrong.text
        weak = await post_form(
            laptop,
            "/profile",
            "/profile/password",
            current_password=PASSWORD,
            new_password="short",
        )
        assert weak.status_code == 400 and "at least 10 characters" in weak.text
        assert (await phone.get("/dashboard")).status_code == 200  # nothing changed yet

        changed = await post_form(
            laptop,
            "/profile",
            "/profile/password",
            current_password=PASSWORD,
            new_password=NEW_PASSWORD,
        )
        assert changed.status_code == 200 and "1 other session signed out" in changed.text
        assert (await laptop.get("/dashboard")).status_code == 200  # this one stays
        assert (await phone.get("/dashboard")).status_code == 303  # the other is over
        phone.cookies.clear()
        assert (await sign_in(phone, "pw@example.com")).status_code == 400  # old password
        assert (await sign_in(phone, "pw@example.com", NEW_PASSWORD)).status_code == 303


async def test_sessions_list_marks_this_one_and_ends_one_or_all_others(
    app: Any, db: Database
) -> None:
    async with (
        browser(app, "Laptop Firefox") as laptop,
        browser(app, "Phone Safari") as phone,
        browser(app, "Tablet Chrome") as tablet,
    ):
        await sign_up(laptop, "many@example.com")
        await sign_in(phone, "many@example.com")
        await sign_in(tablet, "many@example.com")
        page = (await laptop.get("/profile")).text
        for agent in ("Laptop Firefox", "Phone Safari", "Tablet Chrome"):
            assert f"<td>{agent}</td>" in page
        assert page.count("<td>203.0.113.7</td>") == 3
        assert page.count("this session") == 1 and page.count("data-current") == 1
        async with db.read() as session:
            rows = list(await session.scalars(select(WebSession)))
        phone_id = next(r.id for r in rows if r.user_agent == "Phone Safari")

        ended = await post_form(laptop, "/profile", f"/profile/sessions/{phone_id}/end")
        assert ended.status_code == 303
        assert (await phone.get("/dashboard")).status_code == 303
        assert (await tablet.get("/dashboard")).status_code == 200

        others = await post_form(laptop, "/profile", "/profile/sessions/end-others")
        assert "1 other session signed out" in others.text
        assert (await tablet.get("/dashboard")).status_code == 303
        assert (await laptop.get("/dashboard")).status_code == 200
        page = (await laptop.get("/profile")).text
        assert "Tablet Chrome" not in page and "Sign out all other sessions" not in page


async def test_a_user_cannot_end_another_users_session(app: Any, db: Database) -> None:
    async with browser(app, "Mine") as mine, browser(app, "Theirs") as theirs:
        await sign_up(mine, "mine@example.com")
        await sign_up(theirs, "theirs@example.com")
        async with db.read() as session:
            their_id = await session.scalar(
                select(WebSession.id).where(WebSession.user_agent == "Theirs")
            )
        assert their_id
        await post_form(mine, "/profile", f"/profile/sessions/{their_id}/end")
        assert (await theirs.get("/dashboard")).status_code == 200


async def test_last_seen_is_written_at_most_once_a_minute(
    client: httpx2.AsyncClient, db: Database
) -> None:
    await sign_up(client, "seen@example.com")

    async def last_seen() -> Any:
        async with db.read() as session:
            return await session.scalar(select(WebSession.last_seen_at))

    first = await last_seen()
    await client.get("/dashboard")
    assert await last_seen() == first  # within the minute: no write
    earlier = utcnow() - timedelta(minutes=5)
    async with db.write() as session:
        await session.execute(update(WebSession).values(last_seen_at=earlier))
    await client.get("/dashboard")
    seen = await last_seen()
    assert seen > earlier + timedelta(minutes=4)
    page = (await client.get("/profile")).text
    assert seen.strftime("%Y-%m-%d %H:%M") in page
