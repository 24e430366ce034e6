"""Sign-up, sign-in, sessions and CSRF."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
from sqlalchemy import func, select

from mediagate.accounts import users
from mediagate.accounts.models import User
from mediagate.accounts.passwords import hash_blocking
from mediagate.app import create_app
from mediagate.core.db import Database
from mediagate.core.migrate import upgrade
from mediagate.ledger.models import LedgerTransfer
from tests.services import redis_server
from tests.web.helpers import (
    PASSWORD,
    form_token,
    page_token,
    post_form,
    sign_in,
    sign_up,
    submit_sign_up,
)


async def test_sign_up_then_sign_in_gives_a_session_and_welcome_test_credits(
    client: httpx2.AsyncClient,
) -> None:
    answer = await submit_sign_up(client, "Ada@Example.com")
    assert answer.status_code == 303 and answer.headers["location"] == "/login?signed_up=1"
    assert "mg_session" not in answer.headers.get("set-cookie", "")  # signed in next, below
    assert "account is ready" in (await client.get(answer.headers["location"])).text
    answer = await sign_in(client, "ada@example.com")
    assert answer.status_code == 303 and answer.headers["location"] == "/dashboard"
    cookie = answer.headers["set-cookie"]
    assert "mg_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain http here; https sets it (below)
    overview = await client.get("/dashboard")
    assert overview.status_code == 200
    assert "ada@example.com" in overview.text
    assert 'data-balance="test">100<' in overview.text
    for header in ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options"):
        assert header.lower() in overview.headers


async def test_secure_cookie_over_https(make_settings: Any, app: Any) -> None:
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="https://gateway.test") as c:
        answer = await sign_up(c, "sec@example.com")
    assert "Secure" in answer.headers["set-cookie"]


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("not-an-email", PASSWORD, "valid email"),
        ("short@example.com", "short", "at least 10 characters"),
    ],
)
async def test_sign_up_refusals_name_the_problem(
    client: httpx2.AsyncClient, db: Database, email: str, password: str, message: str
) -> None:
    answer = await submit_sign_up(client, email, password)
    assert answer.status_code == 400 and message in answer.text
    assert "mg_session" not in answer.headers.get("set-cookie", "")
    assert await user_count(db) == 0


@pytest.mark.parametrize("password", ["password123", "PassWord123", "qwertyuiop", "1234567890"])
async def test_finding_12_common_passwords_are_refused(
    client: httpx2.AsyncClient, db: Database, password: str
) -> None:
    answer = await submit_sign_up(client, "common@example.com", password)
    assert answer.status_code == 400
    assert "list of common passwords" in answer.text
    assert await user_count(db) == 0


async def user_count(db: Database) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(User)) or 0)


def same_answer(response: httpx2.Response) -> tuple[object, ...]:
    """What a client can see of a sign-up's answer."""
    cookies = sorted(c.split("=", 1)[0] for c in response.headers.get_list("set-cookie"))
    return response.status_code, response.headers.get("location"), cookies, response.content


async def test_finding_12_sign_up_answers_the_same_for_a_registered_email(
    app: Any, db: Database
) -> None:
    """No enumeration: a taken email gets the new-account answer; its owner is untouched."""

    def browser() -> httpx2.AsyncClient:
        transport = httpx2.ASGITransport(app=app)
        return httpx2.AsyncClient(transport=transport, base_url="http://gateway.test")

    async with browser() as owner, browser() as stranger, browser() as newcomer:
        await sign_up(owner, "dup@example.com")
        taken = await submit_sign_up(stranger, "DUP@example.com", "another long passphrase")
        new = await submit_sign_up(newcomer, "fresh@example.com", "another long passphrase")
        assert same_answer(taken) == same_answer(new)
        assert taken.status_code == 303 and "exists" not in taken.text
        assert not stranger.cookies.get("mg_session")  # nobody was signed in
        assert (await stranger.get("/dashboard")).status_code == 303
        wrong = await sign_in(stranger, "dup@example.com", "another long passphrase")
        assert wrong.status_code == 400  # the stranger's password was not set
        assert (await sign_in(stranger, "dup@example.com")).status_code == 303  # the owner's
    assert await user_count(db) == 2


async def test_wrong_password_and_unknown_email_answer_alike(client: httpx2.AsyncClient) -> None:
    await sign_up(client, "dup@example.com")
    client.cookies.clear()
    wrong = await sign_in(client, "dup@example.com", "wrong password!")
    assert wrong.status_code == 400 and "Wrong email or password" in wrong.text
    unknown = await sign_in(client, "nobody@example.com")
    assert unknown.status_code == 400 and "Wrong email or password" in unknown.text
    right = await sign_in(client, "dup@example.com")
    assert right.status_code == 303


async def test_pages_need_a_session(client: httpx2.AsyncClient) -> None:
    for path in ("/dashboard", "/console", "/keys", "/usage", "/tasks", "/admin"):
        answer = await client.get(path)
        assert answer.status_code == 303 and answer.headers["location"] == "/login", path
    assert (await client.get("/models")).status_code == 200  # the docs are public


async def test_session_fixation_a_planted_cookie_is_never_adopted(
    client: httpx2.AsyncClient,
) -> None:
    await sign_up(client, "fix@example.com")
    client.cookies.clear()
    planted = "attacker-chosen-session-value"
    client.cookies.set("mg_session", planted, domain="gateway.test")
    answer = await sign_in(client, "fix@example.com")
    issued = answer.cookies.get("mg_session")
    assert issued and issued != planted
    client.cookies.clear()
    client.cookies.set("mg_session", planted, domain="gateway.test")
    assert (await client.get("/dashboard")).status_code == 303  # the planted id is nobody's


async def test_logout_ends_the_session_server_side(client: httpx2.AsyncClient) -> None:
    await sign_up(client, "bye@example.com")
    token = client.cookies.get("mg_session")
    out = await post_form(client, "/dashboard", "/logout")
    assert out.status_code == 303 and out.headers["location"] == "/login"
    client.cookies.clear()
    client.cookies.set("mg_session", token, domain="gateway.test")  # a copy of the old cookie
    assert (await client.get("/dashboard")).status_code == 303
    # each sign-in is its own session: two browsers, one signs out, the other stays in
    first = await sign_in(client, "bye@example.com")
    assert first.status_code == 303


async def test_csrf_missing_token_and_cross_origin_posts_are_refused(
    client: httpx2.AsyncClient,
) -> None:
    await sign_up(client, "csrf@example.com")
    keys_before = (await client.get("/keys")).text.count("data-key=")
    token = page_token((await client.get("/keys")).text)

    no_token = await client.post("/keys", data={"name": "x", "mode": "test"})
    wrong_token = await client.post(
        "/keys", data={"name": "x", "mode": "test", "csrf_token": "nope"}
    )
    # A form on another site posting to us: the browser sends our cookie (SameSite=Lax
    # would already drop it on a cross-site POST) and its own Origin; no token it can read.
    cross_origin = await client.post(
        "/keys",
        data={"name": "x", "mode": "test", "csrf_token": token},
        headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    )
    cross_site_only = await client.post(
        "/keys",
        data={"name": "x", "mode": "test", "csrf_token": token},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    for answer in (no_token, wrong_token, cross_origin, cross_site_only):
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"]["type"] == "permission_error"
    assert (await client.get("/keys")).text.count("data-key=") == keys_before  # nothing made
    same_origin = await client.post(
        "/keys",
        data={"name": "x", "mode": "test", "csrf_token": token},
        headers={"Origin": "http://gateway.test", "Sec-Fetch-Site": "same-origin"},
    )
    assert same_origin.status_code == 200


async def test_login_form_needs_its_token_too(client: httpx2.AsyncClient) -> None:
    await sign_up(client, "login-csrf@example.com")
    client.cookies.clear()
    page = await client.get("/login")
    forged = await client.post(
        "/login", data={"email": "login-csrf@example.com", "password": PASSWORD}
    )
    assert forged.status_code == 403
    ok = await client.post(
        "/login",
        data={
            "email": "login-csrf@example.com",
            "password": PASSWORD,
            "csrf_token": form_token(page.text),
        },
    )
    assert ok.status_code == 303


@asynccontextmanager
async def gateway(make_settings: Any, **overrides: Any) -> AsyncIterator[Any]:
    settings = make_settings(**overrides)
    await asyncio.to_thread(upgrade, settings)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


def browser_at(app: Any, address: str) -> httpx2.AsyncClient:
    """A client whose requests come from `address`."""
    transport = httpx2.ASGITransport(app=app, client=(address, 40000))
    return httpx2.AsyncClient(transport=transport, base_url="http://gateway.test")


async def test_sign_in_attempts_are_rate_limited_per_address_and_email(make_settings: Any) -> None:
    async with (
        gateway(make_settings, login_attempts_per_minute=3) as app,
        browser_at(app, "203.0.113.9") as c,
    ):
        answers = [await sign_in(c, "guess@example.com", f"guess number {i}") for i in range(5)]
    assert [a.status_code for a in answers] == [400, 400, 400, 429, 429]
    assert "Retry-After" in answers[3].headers
    assert "Too many sign-in attempts" in answers[3].text


async def test_finding_12_a_guesser_elsewhere_does_not_lock_the_real_user_out(
    make_settings: Any,
) -> None:
    async with gateway(make_settings, login_attempts_per_minute=3) as app:
        async with browser_at(app, "198.51.100.7") as user:
            await sign_up(user, "victim@example.com")
        async with browser_at(app, "203.0.113.9") as attacker:
            answers = [
                await sign_in(attacker, "victim@example.com", f"guess number {i}")
                for i in range(10)
            ]
        assert {a.status_code for a in answers[3:]} == {429}  # the attacker's pair is spent
        async with browser_at(app, "198.51.100.7") as user:
            assert (await sign_in(user, "victim@example.com")).status_code == 303


async def test_the_per_email_back_off_caps_a_guesser_on_many_addresses(
    make_settings: Any,
) -> None:
    async with gateway(
        make_settings, login_attempts_per_minute=3, login_attempts_per_email_per_hour=5
    ) as app:
        answers = []
        for n in range(8):  # one guess from each of eight addresses
            async with browser_at(app, f"203.0.113.{n + 1}") as attacker:
                answers.append(await sign_in(attacker, "victim@example.com", f"guess {n}xxxxx"))
        assert [a.status_code for a in answers] == [400] * 5 + [429] * 3
        assert "Retry-After" in answers[5].headers
        async with browser_at(app, "198.51.100.99") as other:  # other emails are unaffected
            assert (await sign_in(other, "someone@example.com")).status_code == 400


async def test_finding_3_sign_up_over_the_limit_is_429_and_creates_nothing(
    make_settings: Any,
) -> None:
    async with gateway(make_settings, signup_per_address_per_hour=2, signup_per_hour=3) as app:
        db = app.state.core.db
        async with browser_at(app, "203.0.113.1") as one:
            first = [await submit_sign_up(one, f"u{i}@example.com") for i in range(3)]
        assert [a.status_code for a in first] == [303, 303, 429]
        assert "Retry-After" in first[2].headers and "Too many sign-up" in first[2].text
        assert await user_count(db) == 2
        async with browser_at(app, "203.0.113.2") as two:  # another address: its own two
            assert (await submit_sign_up(two, "u3@example.com")).status_code == 303
            over_all = await submit_sign_up(two, "u4@example.com")  # but everyone's 3 are used
        assert over_all.status_code == 429 and "Retry-After" in over_all.headers
        assert await user_count(db) == 3


async def test_signup_test_credits_0_turns_the_grant_off(make_settings: Any) -> None:
    async with gateway(make_settings, signup_test_credits=0) as app:
        async with browser_at(app, "198.51.100.7") as user:
            await sign_up(user, "nocredits@example.com")
            assert 'data-balance="test">0<' in (await user.get("/dashboard")).text
        async with app.state.core.db.read() as session:
            transfers = (await session.scalars(select(LedgerTransfer))).all()
        assert transfers == []  # no zero-amount entry either


async def test_admin_pages_are_for_operators(client: httpx2.AsyncClient, db: Any) -> None:
    await sign_up(client, "user@example.com")
    assert (await client.get("/admin")).status_code == 403
    async with db.write() as session:
        await users.create_user(session, "op@example.com", hash_blocking(PASSWORD), admin=True)
    client.cookies.clear()
    await sign_in(client, "op@example.com")
    assert (await client.get("/admin")).status_code == 200


async def test_sign_in_and_sign_up_limits_are_shared_by_replicas_through_redis(
    make_settings: Any, tmp_path: Any
) -> None:
    with redis_server(tmp_path) as redis:
        limits = {
            "redis_url": redis.url,
            "login_attempts_per_minute": 2,
            "signup_per_address_per_hour": 1,
        }
        async with (
            gateway(make_settings, **limits) as one,
            gateway(make_settings, **limits) as two,
            browser_at(one, "203.0.113.5") as a,
            browser_at(two, "203.0.113.5") as b,
        ):
            guesses = [await sign_in(c, "shared@example.com", "wrong guess!") for c in (a, b, a)]
            assert [g.status_code for g in guesses] == [400, 400, 429]
            assert (await submit_sign_up(a, "r1@example.com")).status_code == 303
            assert (await submit_sign_up(b, "r2@example.com")).status_code == 429
