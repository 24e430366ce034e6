"""The home page: what the gateway offers and its models for a visitor; the overview for a
signed-in user."""

import httpx2
from markupsafe import escape

from mediagate.catalog.loader import load_catalog
from tests.web.helpers import sign_up


async def test_a_visitor_sees_the_offer_the_models_and_the_way_in(
    client: httpx2.AsyncClient,
) -> None:
    answer = await client.get("/")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    page = answer.text
    assert "One API for generative media models" in page
    for spec in load_catalog().models.values():
        assert f'href="/models/{spec.id}"' in page and str(escape(spec.name)) in page
        assert str(escape(spec.summary)) in page
    assert 'href="/signup"' in page and 'href="/login"' in page


async def test_a_signed_in_user_goes_on_to_the_overview(client: httpx2.AsyncClient) -> None:
    await sign_up(client, "home@example.com")
    answer = await client.get("/")
    assert answer.status_code == 303 and answer.headers["location"] == "/dashboard"
