"""Redemption codes: long, random, checksummed (typos refused before any lookup), stored
hashed; single or N uses; redeemed by API key or on the Top up page; rate limited per
account and per address; a single-use code redeemed twice at once grants once."""

import asyncio
import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx2
import pytest
from sqlalchemy import select, update

from mediagate.accounts import users
from mediagate.accounts.passwords import hash_blocking
from mediagate.billing import codes
from mediagate.billing.models import Redemption, RedemptionCode
from mediagate.core.clock import utcnow
from mediagate.core.db import Database
from mediagate.core.migrate import upgrade
from mediagate.core.settings import Settings
from mediagate.ledger import service as ledger
from tests.e2e.procs import cli, environment
from tests.factories import KeyFactory
from tests.web.helpers import PASSWORD, post_form, sign_in, sign_up

REDEEM = "/api/v1/account/redeem"


async def make_codes(db: Database, settings: Settings, **options: Any) -> list[str]:
    values: dict[str, Any] = {"credits": 40, "count": 1, "created_by": "test", **options}
    async with db.write() as session:
        _, made = await codes.create_batch(session, settings.hmac_secret, **values)
    return made


async def available(db: Database, account_id: str, mode: ledger.Mode) -> int:
    async with db.read() as session:
        return (await ledger.balance(session, account_id, mode)).available


def test_codes_are_long_random_and_checksummed() -> None:
    made = {codes.generate() for _ in range(200)}
    assert len(made) == 200
    for code in made:
        assert re.fullmatch(r"MG(-[0-9A-HJKMNP-TV-Z]{5}){4}-[0-9A-HJKMNP-TV-Z]{4}", code)
        assert codes.parse(code) is not None
        assert codes.parse(code.lower().replace("-", " ")) == codes.parse(code)


def test_every_single_typo_and_swap_is_caught_before_a_lookup() -> None:
    code = codes.generate()
    body = code.replace("-", "")
    missed = 0
    for i in range(2, len(body)):  # after the MG prefix
        for c in codes.ALPHABET:
            if c != body[i] and codes.parse(body[:i] + c + body[i + 1 :]) is not None:
                missed += 1
        if i + 1 < len(body) and body[i] != body[i + 1]:
            swapped = body[:i] + body[i + 1] + body[i] + body[i + 2 :]
            assert codes.parse(swapped) is None, "adjacent swap passed the check"
    assert missed == 0
    assert codes.parse(code[:-1]) is None and codes.parse(code + "0") is None
    assert codes.parse("") is None and codes.parse("MG-" + "!" * 24) is None
    # What people misread is read as meant: O for 0, I and L for 1.
    if "0" in body[2:]:
        assert codes.parse(code.replace("0", "O")) == codes.parse(code)


async def test_codes_are_stored_hashed(db: Database, settings: Settings) -> None:
    (code,) = await make_codes(db, settings)
    async with db.read() as session:
        stored = (await session.scalars(select(RedemptionCode))).one()
    body = codes.parse(code)
    assert body is not None and body not in stored.code_hash and code not in stored.code_hash
    assert stored.code_hash == codes.digest(settings.hmac_secret, body)


async def test_redeem_by_api_into_the_keys_mode_or_the_batchs(
    client: httpx2.AsyncClient, db: Database, settings: Settings, keys: KeyFactory
) -> None:
    live = await keys(account="redeemer", mode="live", credits=0)
    test = await keys(account="redeemer", mode="test", credits=0)
    first, second = await make_codes(db, settings, count=2)
    (test_only,) = await make_codes(db, settings, credits=7, test=True)

    answer = await client.post(REDEEM, json={"code": first.lower()}, headers=live.headers)
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert (data["credits"], data["mode"], data["available"]) == (40, "live", 40)
    assert data["batch"].startswith("cbt_")
    answer = await client.post(REDEEM, json={"code": second}, headers=test.headers)
    assert answer.json()["data"]["mode"] == "test"
    answer = await client.post(REDEEM, json={"code": test_only}, headers=live.headers)
    assert answer.json()["data"] == {**answer.json()["data"], "mode": "test", "credits": 7}
    assert await available(db, live.account_id, "live") == 40
    assert await available(db, live.account_id, "test") == 47
    async with db.read() as session:
        reasons = list(
            await session.scalars(
                select(Redemption.batch_id).where(Redemption.account_id == live.account_id)
            )
        )
    assert len(reasons) == 3

    again = await client.post(REDEEM, json={"code": first}, headers=live.headers)
    assert again.status_code == 409 and again.json()["error"]["type"] == "conflict"


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"code": "MG-00000-00000-00000-00000-0000"}, 400, "typos"),
        ({"code": "not a code"}, 400, "typos"),
        ({"code": ""}, 400, "code"),
        ({"code": 5}, 400, "code"),
        ({"codes": "x"}, 400, "code"),
        ({"code": "x" * 101}, 400, "code"),
    ],
)
async def test_bad_codes_are_refused_clearly(
    client: httpx2.AsyncClient, keys: KeyFactory, body: Any, status: int, says: str
) -> None:
    key = await keys(credits=0)
    answer = await client.post(REDEEM, json=body, headers=key.headers)
    assert answer.status_code == status and says in answer.json()["message"]
    assert answer.json()["error"]["param"] == "code"


async def test_unknown_and_expired_codes(
    client: httpx2.AsyncClient, db: Database, settings: Settings, keys: KeyFactory
) -> None:
    key = await keys(credits=0)
    unknown = codes.generate()  # well formed, never issued
    answer = await client.post(REDEEM, json={"code": unknown}, headers=key.headers)
    assert answer.status_code == 400 and answer.json()["message"] == "No such code"
    (code,) = await make_codes(db, settings, expires_at=utcnow() + timedelta(days=1))
    async with db.write() as session:
        await session.execute(
            update(RedemptionCode).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    answer = await client.post(REDEEM, json={"code": code}, headers=key.headers)
    assert answer.status_code == 409 and "expired" in answer.json()["message"]
    assert await available(db, key.account_id, "test") == 0


async def test_a_code_with_three_uses_serves_three_accounts_once_each(
    client: httpx2.AsyncClient, db: Database, settings: Settings, keys: KeyFactory
) -> None:
    (code,) = await make_codes(db, settings, uses=3)
    people = [await keys(account=f"user{i}", credits=0) for i in range(4)]
    answers = [
        (await client.post(REDEEM, json={"code": code}, headers=p.headers)).status_code
        for p in people[:3]
    ]
    assert answers == [200, 200, 200]
    twice = await client.post(REDEEM, json={"code": code}, headers=people[0].headers)
    assert twice.status_code == 409 and "already redeemed" in twice.json()["message"]
    fourth = await client.post(REDEEM, json={"code": code}, headers=people[3].headers)
    assert fourth.status_code == 409 and "already been used" in fourth.json()["message"]
    async with db.read() as session:
        assert (await session.scalars(select(RedemptionCode))).one().uses == 3


async def test_two_redemptions_at_once_grant_once(
    client: httpx2.AsyncClient, db: Database, settings: Settings, keys: KeyFactory
) -> None:
    for _ in range(5):
        (code,) = await make_codes(db, settings)
        a, b = await keys(account="racer-a", credits=0), await keys(account="racer-b", credits=0)
        answers = await asyncio.gather(
            *(client.post(REDEEM, json={"code": code}, headers=k.headers) for k in (a, b, a))
        )
        assert sorted(r.status_code for r in answers) == [200, 409, 409]
        total = await available(db, a.account_id, "test") + await available(
            db, b.account_id, "test"
        )
        assert total == 40 * (_ + 1)
        async with db.read() as session:
            assert (
                await session.scalar(
                    select(RedemptionCode.uses).where(
                        RedemptionCode.code_hash
                        == codes.digest(settings.hmac_secret, str(codes.parse(code)))
                    )
                )
            ) == 1


@pytest.fixture
def settings(make_settings: Callable[..., Settings], request: pytest.FixtureRequest) -> Settings:
    """Redemption attempts allowed a minute: 60, or the test's parameter."""
    s = make_settings(redeem_attempts_per_minute=getattr(request, "param", 60))
    upgrade(s)
    return s


@pytest.mark.parametrize("settings", [3], indirect=True)
async def test_redemption_is_rate_limited_per_account_and_per_address(
    client: httpx2.AsyncClient, keys: KeyFactory
) -> None:
    key = await keys(account="guesser", credits=0)
    statuses = [
        (
            await client.post(REDEEM, json={"code": codes.generate()}, headers=key.headers)
        ).status_code
        for _ in range(4)
    ]
    assert statuses == [400, 400, 400, 429]
    other = await keys(account="neighbour", credits=0)  # same address, its own account
    limited = await client.post(REDEEM, json={"code": codes.generate()}, headers=other.headers)
    assert limited.status_code == 429 and "Retry-After" in limited.headers


async def test_operators_make_batches_on_the_admin_page_users_redeem_on_top_up(
    client: httpx2.AsyncClient, db: Database
) -> None:
    async with db.write() as session:
        await users.create_user(session, "ops@example.com", hash_blocking(PASSWORD), admin=True)
    await sign_in(client, "ops@example.com")
    bad = await post_form(client, "/admin/codes", "/admin/codes", credits="0", count="2")
    assert bad.status_code == 400 and "Credits per code" in bad.text
    made = await post_form(
        client, "/admin/codes", "/admin/codes", credits="25", count="2", uses="1",
        expires="2099-12-31", note="launch party",
    )  # fmt: skip
    assert made.status_code == 200
    shown = re.search(r'<pre id="new-codes">(.*?)</pre>', made.text, re.S)
    assert shown
    issued = shown.group(1).split()
    assert len(issued) == 2 and all(codes.parse(c) for c in issued)
    listing = (await client.get("/admin/codes")).text
    assert "launch party" in listing and issued[0] not in listing  # shown once
    assert "2099-12-31" in listing

    client.cookies.clear()
    await sign_up(client, "fan@example.com")
    answer = await post_form(client, "/topup", "/redeem", code=issued[0])
    assert answer.status_code == 200 and "25 live credits added" in answer.text
    assert 'data-balance="live">25<' in answer.text
    again = await post_form(client, "/topup", "/redeem", code=issued[0])
    assert again.status_code == 409 and "already" in again.text
    typo = await post_form(client, "/topup", "/redeem", code=issued[1][:-1] + "X")
    assert typo.status_code == 400 and "typos" in typo.text
    assert "launch party" not in (await client.get("/usage")).text  # the note is the operator's
    assert "Redeemed code" in (await client.get("/usage")).text


async def test_the_cli_makes_a_batch_that_the_api_redeems(
    client: httpx2.AsyncClient, db: Database, settings: Settings, keys: KeyFactory
) -> None:
    env = environment(settings.data_dir, settings.database_url)
    env["MEDIAGATE_SECRET_KEY"] = "test-secret-key"  # the app's, so the hashes match
    out = await asyncio.to_thread(
        cli, env, "codes", "create", "--credits", "15", "--count", "3", "--uses", "2",
        "--expires", "2099-01-31", "--test", "--json",
    )  # fmt: skip
    batch = json.loads(out)
    assert batch["credits"] == 15 and len(batch["codes"]) == 3
    live = await keys(account="cli-user", mode="live", credits=0)
    answer = await client.post(REDEEM, json={"code": batch["codes"][0]}, headers=live.headers)
    assert answer.status_code == 200 and answer.json()["data"]["mode"] == "test"  # --test
    async with db.read() as session:
        stored = (await session.scalars(select(RedemptionCode))).all()
    assert {c.max_uses for c in stored} == {2} and all(c.expires_at for c in stored)
    plain = await asyncio.to_thread(cli, env, "codes", "create", "--credits", "1", "--count", "2")
    assert len(plain.split()) == 2
