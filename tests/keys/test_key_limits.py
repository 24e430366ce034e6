"""Per-key limits: models, client addresses and spending caps (the cap in the hold's own
transaction, exact under concurrent submits), set from the dashboard and the CLI."""

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest

from mediagate.app import build_runner
from mediagate.cli import main
from mediagate.core.db import Database
from mediagate.core.errors import InvalidRequest
from mediagate.core.settings import Settings
from mediagate.keys import service as key_service
from mediagate.keys.limits import KeyLimits, describe_limits, parse_limits
from mediagate.keys.models import ApiKey
from mediagate.keys.spending import period_end, period_key
from tests.factories import KeyFactory, MadeKey, generation
from tests.web.helpers import page_token, post_form, sign_up

MODELS = ("kling-image-o1", "flux-schnell")


async def limit(app: Any, key: MadeKey, **typed: str) -> None:
    limits = parse_limits(known_models=tuple(app.state.core.catalog.models), **typed)
    async with app.state.core.db.write() as session:
        await key_service.set_limits(session, key.id, limits)
    app.state.key_cache.clear()


async def submit(client: httpx2.AsyncClient, key: MadeKey, **fields: Any) -> httpx2.Response:
    return await client.post(
        "/api/v1/images/generations", json=generation(**fields), headers=key.headers
    )


def test_limits_as_typed_are_checked_and_named() -> None:
    limits = parse_limits(
        models="flux-schnell, kling-image-o1",
        networks="10.0.0.0/8 2001:db8::/32, 192.0.2.7",
        day="30",
        total="500",
        known_models=MODELS,
    )
    assert limits.models == ("flux-schnell", "kling-image-o1")
    assert [str(n) for n in limits.networks or ()] == [
        "10.0.0.0/8",
        "2001:db8::/32",
        "192.0.2.7/32",
    ]
    assert limits.caps == (("day", 30), ("total", 500))
    assert describe_limits(limits) == (
        "models flux-schnell, kling-image-o1; from 10.0.0.0/8, 2001:db8::/32, 192.0.2.7/32; "
        "30 credits per day; 500 credits in total"
    )
    assert describe_limits(parse_limits(known_models=MODELS)) == "no limits"
    for typed, param in (
        ({"models": "dall-e"}, "models"),
        ({"networks": "10.0.0.300/8"}, "networks"),
        ({"month": "-5"}, "cap_month"),
        ({"day": "ten"}, "cap_day"),
    ):
        with pytest.raises(InvalidRequest) as caught:
            parse_limits(known_models=MODELS, **typed)
        assert caught.value.param == param


def test_periods_and_when_they_reset() -> None:
    moment = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    assert [period_key(p, moment) for p in ("day", "month", "total")] == [
        "day:2026-12-31",
        "month:2026-12",
        "total",
    ]
    assert period_end("day", moment) == datetime(2027, 1, 1, tzinfo=UTC)
    assert period_end("month", moment) == datetime(2027, 1, 1, tzinfo=UTC)
    assert period_end("month", datetime(2026, 1, 31, tzinfo=UTC)) == datetime(
        2026, 2, 1, tzinfo=UTC
    )
    assert period_end("total", moment) is None


async def test_a_key_limited_to_models_refuses_the_others(
    app: Any, client: httpx2.AsyncClient, keys: KeyFactory
) -> None:
    key = await keys(credits=100)
    await limit(app, key, models="flux-schnell")
    refused = await submit(client, key)
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert (error["type"], error["param"]) == ("permission_error", "model")
    assert "may not use model 'kling-image-o1'" in error["message"]
    assert "limited to: flux-schnell" in error["message"]
    allowed = await submit(client, key, model="flux-schnell")
    assert allowed.status_code == 200, allowed.text
    account = (await client.get("/api/v1/account", headers=key.headers)).json()["data"]
    assert account["credits"]["held"] == 1  # the refused task held nothing


async def test_a_key_limited_to_networks_refuses_other_addresses(
    app: Any, client: httpx2.AsyncClient, keys: KeyFactory
) -> None:
    key = await keys(credits=100)
    await limit(app, key, networks="10.0.0.0/8, 2001:db8::/32")
    refused = await client.get("/api/v1/account", headers=key.headers)
    assert refused.status_code == 403
    assert "may not be used from 127.0.0.1" in refused.json()["error"]["message"]
    assert "10.0.0.0/8, 2001:db8::/32" in refused.json()["error"]["message"]
    await limit(app, key, networks="127.0.0.0/8")
    assert (await client.get("/api/v1/account", headers=key.headers)).status_code == 200


async def test_daily_cap_refuses_with_when_it_resets_and_failures_give_back(
    app: Any, client: httpx2.AsyncClient, keys: KeyFactory
) -> None:
    key = await keys(credits=1000)
    await limit(app, key, day="20", month="1000")
    first = [await submit(client, key) for _ in range(3)]  # 3 x 6 = 18 of 20
    assert [r.status_code for r in first] == [200] * 3
    refused = await submit(client, key)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["type"] == "spend_limit_exceeded"
    assert "daily spending cap of 20 credits does not leave 6" in error["message"]
    assert "resets at" in error["message"] and int(refused.headers["retry-after"]) > 0

    # A failed task is not charged, so it no longer counts against the cap.
    await limit(app, key, day="26", month="1000")
    doomed = await submit(client, key, prompt="x [sandbox:fail]")  # 24 of 26
    assert doomed.status_code == 200
    assert (await submit(client, key)).status_code == 429
    core = app.state.core
    await build_runner(core.db, core.settings, core.catalog, app.state.components).drain()
    assert (await submit(client, key)).status_code == 200  # 18 + 6 after the failure's 6 back


async def test_total_cap_is_a_403_that_never_resets(
    app: Any, client: httpx2.AsyncClient, keys: KeyFactory
) -> None:
    key = await keys(credits=100)
    await limit(app, key, total="10")
    assert (await submit(client, key)).status_code == 200
    refused = await submit(client, key)
    assert refused.status_code == 403
    assert refused.json()["error"]["param"] == "cap_total"
    assert "never resets" in refused.json()["error"]["message"]


async def test_spend_cap_holds_under_100_concurrent_submits(
    app: Any, client: httpx2.AsyncClient, keys: KeyFactory
) -> None:
    key = await keys(credits=10_000)
    await limit(app, key, day="60")  # room for exactly 10 tasks of 6
    answers = await asyncio.gather(*(submit(client, key) for _ in range(100)))
    codes = sorted(a.status_code for a in answers)
    assert codes.count(200) == 10 and codes.count(429) == 90, codes
    account = (await client.get("/api/v1/account", headers=key.headers)).json()["data"]
    assert account["credits"]["held"] == 60


async def test_limits_from_the_dashboard(client: httpx2.AsyncClient, db: Database) -> None:
    await sign_up(client, "limits@example.com")
    page = (await client.get("/keys")).text
    token = page_token(page)
    await client.post("/keys", data={"csrf_token": token, "mode": "test", "name": "app"})
    async with db.read() as session:
        (key,) = await key_service.list_keys(session)
    saved = await post_form(
        client,
        "/keys",
        f"/keys/{key.id}/limits",
        **{"model:flux-schnell": "on", "networks": "10.1.0.0/16", "cap_month": "300"},
    )
    assert saved.status_code == 303
    listed = (await client.get("/keys")).text
    assert "models flux-schnell; from 10.1.0.0/16; 300 credits per month" in listed
    bad = await post_form(client, "/keys", f"/keys/{key.id}/limits", networks="10.1.0.0/99")
    assert bad.status_code == 400 and "is not an IP address or range" in bad.text
    cleared = await post_form(client, "/keys", f"/keys/{key.id}/limits")
    assert cleared.status_code == 303
    async with db.read() as session:
        row = await session.get_one(ApiKey, key.id)
        assert key_service.limits_of(row) is None


def test_limits_from_the_cli(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    env = {"DATA_DIR": settings.data_dir, "SECRET_KEY": "test-secret-key"}
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
    for name, value in env.items():
        monkeypatch.setenv(f"MEDIAGATE_{name}", str(value))
    main(["keys", "create", "--account", "cli", "--json"])
    key_id = json.loads(capsys.readouterr().out)["id"]
    main(["keys", "limit", key_id, "--models", "flux-schnell", "--daily", "50"])
    assert "models flux-schnell; 50 credits per day" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["keys", "limit", key_id, "--ips", "nowhere"])
    assert "'nowhere' is not an IP address" in capsys.readouterr().err
    main(["keys", "limit", key_id])
    assert "no limits" in capsys.readouterr().out


def test_unlimited_is_none() -> None:
    assert KeyLimits().unlimited
