"""Prices as declared rules: each form quotes, refuses a broken declaration, and is what a
task is held and charged."""

import asyncio
from pathlib import Path
from typing import Any

import httpx2
import pytest

from mediagate.app import build_runner, create_app
from mediagate.catalog.pricing import PriceRule, parse_price
from mediagate.catalog.spec import ParamSpec
from mediagate.core.migrate import upgrade
from tests.factories import KeyFactory

PARAMS = {
    "num_images": ParamSpec("num_images", "integer", default=1, minimum=1, maximum=4),
    "duration": ParamSpec("duration", "integer", required=True, minimum=3, maximum=12),
    "resolution": ParamSpec("resolution", "string", enum=("720p", "1080p"), default="720p"),
    "style": ParamSpec("style", "string", enum=("plain", "pro")),
    "prompt": ParamSpec("prompt", "string", required=True),
}


def test_fixed_price_per_request() -> None:
    rule = parse_price(6, PARAMS, "type t")
    assert rule == PriceRule(credits=6)
    assert rule.fixed and rule.quote({"num_images": 4}) == 6
    assert rule.text() == "6 credits per request"


def test_price_per_output_image() -> None:
    rule = parse_price({"credits": 3, "per": "num_images", "unit": "image"}, PARAMS, "t")
    assert [rule.quote({"num_images": n}) for n in (1, 2, 4)] == [3, 6, 12]
    assert rule.quote_defaults(PARAMS) == 3
    assert rule.text() == "3 credits per image"
    assert rule.as_data() == {
        "unit": "image",
        "per": "num_images",
        "by": [],
        "credits": 3,
        "table": None,
        "text": "3 credits per image",
    }


def test_price_per_second_by_resolution_table() -> None:
    raw = {
        "credits": {"720p": 2.5, "1080p": 5},
        "by": ["resolution"],
        "per": "duration",
        "unit": "second",
    }
    rule = parse_price(raw, PARAMS, "t")
    assert rule.quote({"resolution": "720p", "duration": 5}) == 13  # 12.5, rounded up
    assert rule.quote({"resolution": "1080p", "duration": 10}) == 50
    assert rule.quote_defaults(PARAMS) == 8  # 720p x the minimum 3 s, rounded up
    assert rule.rows() == [("720p", 2.5), ("1080p", 5)]
    assert rule.text() == "720p: 2.5 credits per second; 1080p: 5 credits per second"


def test_table_keyed_by_two_params_without_a_multiplier() -> None:
    table = {"720p/plain": 4, "720p/pro": 6, "1080p/plain": 8, "1080p/pro": 12}
    rule = parse_price({"credits": table, "by": ["resolution", "style"]}, PARAMS, "t")
    assert rule.quote({"resolution": "1080p", "style": "pro"}) == 12
    assert rule.quote_defaults(PARAMS) == 4


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (0, "positive number"),
        (True, "a number or a rule table"),
        ("6", "a number or a rule table"),
        ({"credits": 3}, "needs `per` or a table"),
        ({"credits": 3, "per": "prompt"}, "not a numeric param"),
        ({"credits": 3, "per": "seed"}, "not a numeric param"),
        ({"credits": 3, "per": "num_images", "unit": "frame"}, "unit must be one of"),
        ({"credits": 3, "per": "num_images", "each": 1}, "unknown price keys ['each']"),
        ({"credits": {"720p": 1, "1080p": 2}}, "a price table needs `by`"),
        ({"credits": 3, "by": ["resolution"]}, "`by` needs a table"),
        ({"credits": {"720p": 1}, "by": ["resolution"]}, "no entry for 1080p"),
        (
            {"credits": {"720p": 1, "1080p": 2, "4k": 3}, "by": ["resolution"]},
            "match no param values: ['4k']",
        ),
        ({"credits": {"a": 1}, "by": ["prompt"]}, "needs an enum or boolean param"),
        ({"credits": {"720p": 1, "1080p": -2}, "by": ["resolution"]}, "[1080p]: price credits"),
    ],
)
def test_broken_rules_are_refused_with_the_reason(raw: Any, reason: str) -> None:
    with pytest.raises(ValueError, match=r"^type t") as caught:
        parse_price(raw, PARAMS, "type t")
    assert reason in str(caught.value)


TABLE_MODEL = """
id = "test-tiers"
name = "Test Tiers"
endpoint = "images/generations"
capabilities = ["text-to-image"]
deadline_s = 120

[types.draw]
price.credits = { "1k" = 2, "2k" = 5 }
price.by = ["resolution"]
price.per = "num_images"
price.unit = "image"

[params.prompt]
type = "string"
required = true

[params.resolution]
type = "string"
enum = ["1k", "2k"]
default = "1k"

[params.num_images]
type = "integer"
default = 1
minimum = 1
maximum = 3

[[routes]]
provider = "wavespeed"

[routes.tasks.draw]
endpoint = "example/tiers"
fields.prompt = "prompt"
fields.resolution = "resolution"
fields.num_images = "num_images"
results = ["outputs[]"]
"""


@pytest.fixture
async def tiers_app(make_settings: Any, tmp_path: Path) -> Any:
    (tmp_path / "test-tiers.toml").write_text(TABLE_MODEL)
    settings = make_settings(catalog_paths=[tmp_path])
    await asyncio.to_thread(upgrade, settings)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


async def test_the_hold_and_the_charge_are_the_computed_price(
    tiers_app: Any, keys: KeyFactory
) -> None:
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=tiers_app), base_url="http://t"
    ) as c:
        declared = (await c.get("/api/v1/models/test-tiers")).json()["data"]["types"][0]
        assert declared["price"] == 2
        assert declared["pricing"]["table"] == {"1k": 2, "2k": 5}
        assert declared["pricing"]["per"] == "num_images"
        page = (await c.get("/models/test-tiers")).text
        assert '<tr data-price="2k"><td><code>2k</code></td><td>5</td></tr>' in page

        key = await keys(credits=20)
        body = {"model": "test-tiers", "prompt": "x", "resolution": "2k", "num_images": 3}
        created = await c.post("/api/v1/images/generations", json=body, headers=key.headers)
        assert created.status_code == 200, created.text
        account = (await c.get("/api/v1/account", headers=key.headers)).json()["data"]
        assert account["credits"] == {"available": 5, "held": 15, "posted": 20}

        too_dear = {**body, "num_images": 2}
        refused = await c.post("/api/v1/images/generations", json=too_dear, headers=key.headers)
        assert refused.status_code == 402
        assert "10 needed, 5 available" in refused.json()["message"]

        core = tiers_app.state.core
        await build_runner(core.db, core.settings, core.catalog, tiers_app.state.components).drain()
        task_id = created.json()["data"]["task_id"]
        task = (await c.get(f"/api/v1/tasks/{task_id}", headers=key.headers)).json()["data"]
        assert task["status"] == "completed" and task["credits"] == 15
        account = (await c.get("/api/v1/account", headers=key.headers)).json()["data"]
        assert account["credits"] == {"available": 5, "held": 0, "posted": 5}
