"""Sign-up, sign-in, sessions and CSRF."""

import asyncio
from typing import Any

import httpx2
import pytest

from mediagate.accounts import users
from mediagate.app import create_app
from mediagate.core.migrate import upgrade
from tests.web.helpers import PASSWORD, form_token, page_token, post_form, sign_in, sign_up


async def test_sign_up_gives_a_session_and_welcome_test_credits(
    client: httpx2.AsyncClient,
) -> None:
    answer = await sign_up(client, "Ada@Example.com")
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
    client: httpx2.AsyncClient, email: str, password: str, message: str
) -> None:
    answer = await sign_up(client, email, password)
    assert answer.status_code == 400 and message in answer.text
    assert "mg_session" not in answer.headers.get("set-cookie", "")


async def test_duplicate_email_and_wrong_password(client: httpx2.AsyncClient) -> None:
    await sign_up(client, "dup@example.com")
    client.cookies.clear()
    again = await sign_up(client, "DUP@example.com")
    assert again.status_code == 400 and "exists" in again.text
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


async def test_sign_in_attempts_are_rate_limited(make_settings: Any) -> None:
    settings = make_settings(login_attempts_per_minute=3)
    await asyncio.to_thread(upgrade, settings)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx2.ASGITransport(app=application)
        async with httpx2.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
            answers = [await sign_in(c, "guess@example.com", f"guess number {i}") for i in range(5)]
    assert [a.status_code for a in answers] == [400, 400, 400, 429, 429]
    assert "Retry-After" in answers[3].headers


async def test_admin_pages_are_for_operators(client: httpx2.AsyncClient, db: Any) -> None:
    await sign_up(client, "user@example.com")
    assert (await client.get("/admin")).status_code == 403
    async with db.write() as session:
        await users.create_user(session, "op@example.com", PASSWORD, admin=True)
    client.cookies.clear()
    await sign_in(client, "op@example.com")
    assert (await client.get("/admin")).status_code == 200
