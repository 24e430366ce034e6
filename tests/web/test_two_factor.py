"""TOTP two-factor sign-in: enrolment, the code step, recovery codes, replays, limits."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx2
from sqlalchemy import select, update

from mediagate.accounts.models import RecoveryCode, User
from mediagate.accounts.totp import code_at
from mediagate.app import create_app
from mediagate.core.clock import utcnow
from mediagate.core.db import Database
from mediagate.core.migrate import upgrade
from mediagate.web.models import WebSession
from tests.web.helpers import (
    RECOVERY,
    SECRET,
    enrol,
    form_token,
    later,
    post_form,
    sign_in,
    sign_up,
)


@asynccontextmanager
async def browser(app: Any) -> AsyncIterator[httpx2.AsyncClient]:
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
        yield c


async def password_step(client: httpx2.AsyncClient, email: str) -> httpx2.Response:
    client.cookies.clear()
    answer = await sign_in(client, email)
    assert answer.status_code == 303 and answer.headers["location"] == "/login/code"
    return answer


async def code_step(client: httpx2.AsyncClient, code: str) -> httpx2.Response:
    page = await client.get("/login/code")
    assert page.status_code == 200, page.headers.get("location")
    return await client.post(
        "/login/code", data={"code": code, "csrf_token": form_token(page.text)}
    )


async def test_enrolment_shows_the_uri_and_a_qr_code_and_needs_a_right_code(
    client: httpx2.AsyncClient, db: Database
) -> None:
    await sign_up(client, "enrol@example.com")
    assert 'data-two-factor="off"' in (await client.get("/profile")).text
    setup = await post_form(client, "/profile", "/profile/two-factor/setup")
    found = SECRET.search(setup.text)
    assert found
    secret = found.group(1)
    assert "otpauth://totp/mediagate:enrol%40example.com?secret=" in setup.text
    assert f"secret={secret}" in setup.text and "issuer=mediagate" in setup.text
    assert '<svg width="' in setup.text and 'class="segno"' in setup.text  # the QR code

    wrong = await post_form(client, "/profile", "/profile/two-factor/confirm", code="000000")
    assert wrong.status_code == 400 and "not right" in wrong.text
    assert SECRET.search(wrong.text).group(1) == secret  # type: ignore[union-attr]  # same set-up
    assert 'data-two-factor="off"' in (await client.get("/profile")).text

    confirmed = await post_form(
        client, "/profile", "/profile/two-factor/confirm", code=code_at(secret, utcnow())
    )
    codes = RECOVERY.findall(confirmed.text)
    assert len(codes) == 10 and "shown only this once" in confirmed.text
    profile = (await client.get("/profile")).text
    assert 'data-two-factor="on"' in profile and "10 recovery codes left" in profile
    assert codes[0] not in profile  # never shown again

    async with db.read() as session:
        user = await session.scalar(select(User).where(User.email == "enrol@example.com"))
        hashes = list(await session.scalars(select(RecoveryCode.code_hash)))
    assert user is not None and user.totp_secret and secret not in user.totp_secret  # sealed
    assert len(hashes) == 10 and not set(hashes) & {c.replace("-", "") for c in codes}


async def test_sign_in_with_two_factor_password_then_code(app: Any, db: Database) -> None:
    async with browser(app) as client:
        await sign_up(client, "two@example.com")
        secret, _ = await enrol(client)
        answer = await password_step(client, "two@example.com")
        assert "mg_session" not in answer.headers.get("set-cookie", "")
        assert client.cookies.get("mg_pending")
        # The pending cookie is no session, even planted as one.
        client.cookies.set("mg_session", client.cookies["mg_pending"], domain="gateway.test")
        assert (await client.get("/dashboard")).status_code == 303
        del client.cookies["mg_session"]

        wrong = await code_step(client, "123456")
        assert wrong.status_code == 400 and "not right" in wrong.text
        right = await code_step(client, code_at(secret, later(1)))  # next step: drift is fine
        assert right.status_code == 303 and right.headers["location"] == "/dashboard"
        assert (await client.get("/dashboard")).status_code == 200
        assert not client.cookies.get("mg_pending")
        assert (await client.get("/login/code")).headers["location"] == "/login?expired=1"
    async with db.read() as session:
        rows = list(await session.scalars(select(WebSession)))
    # the enrolling browser's session, and the new full one; the pending one is gone
    assert len(rows) == 2 and not any(r.pending_2fa for r in rows)


async def test_a_code_is_never_taken_twice_nor_an_older_one(app: Any) -> None:
    async with browser(app) as client:
        await sign_up(client, "replay@example.com")
        secret, _ = await enrol(client)
        code = code_at(secret, later(1))
        await password_step(client, "replay@example.com")
        assert (await code_step(client, code)).status_code == 303
        await password_step(client, "replay@example.com")
        assert (await code_step(client, code)).status_code == 400  # replayed in its window
        assert (await code_step(client, code_at(secret, utcnow()))).status_code == 400  # older
        assert (await code_step(client, code_at(secret, later(5)))).status_code == 400  # too far


async def test_two_concurrent_sign_ins_with_one_code_get_one_session(app: Any) -> None:
    async with browser(app) as owner, browser(app) as first, browser(app) as second:
        await sign_up(owner, "twin@example.com")
        secret, _ = await enrol(owner)
        await password_step(first, "twin@example.com")
        await password_step(second, "twin@example.com")
        code = code_at(secret, later(1))
        answers = await asyncio.gather(code_step(first, code), code_step(second, code))
        assert sorted(a.status_code for a in answers) == [303, 400]


async def test_a_recovery_code_signs_in_once(app: Any, db: Database) -> None:
    async with browser(app) as client:
        await sign_up(client, "lost@example.com")
        _, codes = await enrol(client)
        await password_step(client, "lost@example.com")
        used = await code_step(client, codes[3].upper().replace("-", " "))  # as typed
        assert used.status_code == 303
        assert "9 recovery codes left" in (await client.get("/profile")).text
        await password_step(client, "lost@example.com")
        assert (await code_step(client, codes[3])).status_code == 400
        assert (await code_step(client, codes[4])).status_code == 303
    async with db.read() as session:
        spent = await session.scalar(
            select(RecoveryCode.id).where(RecoveryCode.used_at.is_not(None)).limit(1)
        )
    assert spent is not None


async def test_the_pending_step_expires(app: Any, db: Database) -> None:
    async with browser(app) as client:
        await sign_up(client, "late@example.com")
        secret, _ = await enrol(client)
        await password_step(client, "late@example.com")
        token = form_token((await client.get("/login/code")).text)
        async with db.write() as session:
            await session.execute(
                update(WebSession)
                .where(WebSession.pending_2fa.is_(True))
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
        expired = await client.get("/login/code")
        assert expired.status_code == 303 and expired.headers["location"] == "/login?expired=1"
        late = await client.post(
            "/login/code", data={"code": code_at(secret, later(1)), "csrf_token": token}
        )
        assert late.status_code == 303 and late.headers["location"] == "/login?expired=1"
        assert (await client.get("/dashboard")).status_code == 303
        assert "sign in again" in (await client.get("/login?expired=1")).text


async def test_the_sixth_code_on_one_pending_session_is_refused_even_if_right(
    app: Any,
) -> None:
    async with browser(app) as client:
        await sign_up(client, "sixth@example.com")
        secret, _ = await enrol(client)
        await password_step(client, "sixth@example.com")
        page = await client.get("/login/code")
        token = form_token(page.text)
        for _ in range(5):
            wrong = await client.post("/login/code", data={"code": "000000", "csrf_token": token})
            assert wrong.status_code == 400
        right = await client.post(
            "/login/code", data={"code": code_at(secret, later(1)), "csrf_token": token}
        )
        assert right.status_code == 303 and right.headers["location"] == "/login?expired=1"
        assert (await client.get("/dashboard")).status_code == 303


async def test_codes_are_limited_per_user_over_every_sign_in(make_settings: Any) -> None:
    settings = make_settings(two_factor_attempts_per_hour=3)
    await asyncio.to_thread(upgrade, settings)
    app = create_app(settings)
    async with app.router.lifespan_context(app), browser(app) as client:
        await sign_up(client, "limited@example.com")
        secret, _ = await enrol(client)
        for _ in range(3):
            await password_step(client, "limited@example.com")
            assert (await code_step(client, "000000")).status_code == 400
        await password_step(client, "limited@example.com")
        limited = await code_step(client, code_at(secret, later(1)))
        assert limited.status_code == 429 and "Retry-After" in limited.headers
        assert "Too many codes" in limited.text


async def test_turning_two_factor_off_needs_a_code(app: Any) -> None:
    async with browser(app) as client:
        await sign_up(client, "off@example.com")
        secret, _ = await enrol(client)
        wrong = await post_form(client, "/profile", "/profile/two-factor/disable", code="111111")
        assert wrong.status_code == 400 and 'data-two-factor="on"' in wrong.text
        off = await post_form(
            client, "/profile", "/profile/two-factor/disable", code=code_at(secret, later(1))
        )
        assert off.status_code == 200 and 'data-two-factor="off"' in off.text
        client.cookies.clear()
        signed = await sign_in(client, "off@example.com")
        assert signed.headers["location"] == "/dashboard"  # no code asked any more


async def test_new_recovery_codes_replace_the_old_ones(app: Any) -> None:
    async with browser(app) as client:
        await sign_up(client, "renew@example.com")
        secret, old = await enrol(client)
        refused = await post_form(
            client, "/profile", "/profile/two-factor/recovery-codes", code="000000"
        )
        assert refused.status_code == 400 and "not right" in refused.text
        renewed = await post_form(
            client,
            "/profile",
            "/profile/two-factor/recovery-codes",
            code=code_at(secret, later(1)),
        )
        new = RECOVERY.findall(renewed.text)
        assert len(new) == 10 and not set(new) & set(old)
        assert "earlier recovery codes no longer work" in renewed.text
        await password_step(client, "renew@example.com")
        assert (await code_step(client, old[0])).status_code == 400
        assert (await code_step(client, new[0])).status_code == 303
