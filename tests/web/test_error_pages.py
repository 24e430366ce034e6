"""Errors as pages for a browser that navigates, the one JSON shape for everything else."""

from typing import Any

import httpx2
import pytest
from fastapi import FastAPI

from mediagate.accounts import users
from mediagate.accounts.passwords import hash_blocking
from tests.web.helpers import PASSWORD, sign_in, sign_up

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


@pytest.mark.parametrize(
    ("path", "accept"),
    [
        ("/no-such-page", BROWSER),
        ("/models/no-such-model", BROWSER),
        ("/no-such-page", "text/html"),
    ],
)
async def test_a_browser_gets_a_404_page_with_a_way_back(
    client: httpx2.AsyncClient, path: str, accept: str
) -> None:
    answer = await client.get(path, headers={"Accept": accept})
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in answer.headers["content-security-policy"]
    assert "<h1>Page not found</h1>" in answer.text
    assert 'href="/"' in answer.text and "Back to the home page" in answer.text


@pytest.mark.parametrize(
    ("path", "accept"),
    [
        ("/no-such-page", ""),  # curl and most clients send */* or nothing
        ("/no-such-page", "*/*"),
        ("/no-such-page", "application/json"),
        ("/no-such-page", "application/json, text/html;q=0.5"),
        ("/api/v1/no-such-route", BROWSER),  # the API keeps its shape even for a browser
        ("/api/v1/models/no-such-model", BROWSER),
        ("/v1/no-such-route", BROWSER),
    ],
)
async def test_everything_else_gets_the_json_error_shape(
    client: httpx2.AsyncClient, path: str, accept: str
) -> None:
    answer = await client.get(path, headers={"Accept": accept} if accept else {})
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["error"]  # the API shape (OpenAI's under /v1/)


async def test_a_forbidden_page_says_so_and_leads_back_to_the_overview(
    client: httpx2.AsyncClient,
) -> None:
    await sign_up(client, "not-an-operator@example.com")
    answer = await client.get("/admin", headers={"Accept": BROWSER})
    assert answer.status_code == 403
    assert "<h1>Not allowed</h1>" in answer.text and "Operators only" in answer.text
    assert 'href="/dashboard"' in answer.text and "Back to the overview" in answer.text
    assert "not-an-operator@example.com" in answer.text  # still signed in, as the header shows
    api = await client.get("/admin", headers={"Accept": "application/json"})
    assert api.status_code == 403 and api.json()["error"]["type"] == "permission_error"


async def test_a_failed_page_is_a_500_page_with_the_request_id(app: FastAPI, db: Any) -> None:
    async def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/broken-page", broken)
    transport = httpx2.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx2.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
        page = await c.get("/broken-page", headers={"Accept": BROWSER, "X-Request-Id": "req-1"})
        api = await c.get("/broken-page", headers={"X-Request-Id": "req-2"})
    assert page.status_code == 500 and page.headers["content-type"].startswith("text/html")
    assert "<h1>Something went wrong</h1>" in page.text and "request id req-1" in page.text
    assert "a bug" not in page.text
    assert api.status_code == 500 and api.json()["error"]["type"] == "api_error"


async def test_an_operator_sees_the_admin_page_not_an_error(
    client: httpx2.AsyncClient, db: Any
) -> None:
    async with db.write() as session:
        await users.create_user(session, "op@example.com", hash_blocking(PASSWORD), admin=True)
    await sign_in(client, "op@example.com")
    answer = await client.get("/admin", headers={"Accept": BROWSER})
    assert answer.status_code == 200 and "<h1>Admin</h1>" in answer.text
