"""Every credit amount is bounded (one declared maximum, enforced where an amount enters:
the admin form, the command line, the ledger's grants) and the ledger stays in 64-bit
integers on both databases."""

import subprocess
import sys
from typing import Any

import httpx2
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from mediagate.accounts import service as accounts
from mediagate.accounts import users
from mediagate.accounts.passwords import hash_blocking
from mediagate.core.db import Database
from mediagate.core.settings import Settings
from mediagate.ledger import service as ledger
from mediagate.ledger.errors import InvalidAmount, WalletFull
from mediagate.ledger.models import LedgerAccount, LedgerTransfer
from tests.e2e.procs import environment
from tests.web.helpers import PASSWORD, post_form, sign_in

ABSURD = [
    str(ledger.MAX_AMOUNT + 1),
    "9223372036854775807",
    "99999999999999999999",
    "-5",
    "0",
    "abc",
    "1e3",
    "1_000",
    "",
    "١٢",  # Arabic-Indic digits: int() would take them
]


async def operator(client: httpx2.AsyncClient, db: Database) -> str:
    """Signed in as an operator; the account id of a customer, "acme", with 100 credits."""
    async with db.write() as session:
        await users.create_user(session, "op@example.com", hash_blocking(PASSWORD), admin=True)
        account, _ = await accounts.get_or_create(session, "acme")
        await ledger.grant(session, account.id, "live", 100, reason="start")
    assert (await sign_in(client, "op@example.com")).status_code == 303
    return account.id


async def grant_form(client: httpx2.AsyncClient, account_id: str, amount: str) -> Any:
    return await post_form(
        client,
        "/admin",
        "/admin/credits",
        account_id=account_id,
        mode="live",
        amount=amount,
        reason="bounds test",
        action="grant",
    )


async def transfers(db: Database) -> int:
    async with db.read() as session:
        return len((await session.scalars(select(LedgerTransfer.id))).all())


async def test_the_largest_grant_keeps_every_balance_an_exact_int(
    client: httpx2.AsyncClient, db: Database
) -> None:
    account_id = await operator(client, db)
    answer = await grant_form(client, account_id, str(ledger.MAX_AMOUNT))
    assert answer.status_code == 303
    async with db.write() as session:  # the wallet then works as usual
        hold = await ledger.hold(session, account_id, "live", 6, task_id="t1")
        await ledger.capture(session, hold)
        await ledger.hold(session, account_id, "live", 16, task_id="t2")
    async with db.read() as session:
        wallets = (await session.scalars(select(LedgerAccount.account_id).distinct())).all()
        for owner in filter(None, wallets):
            for mode in ledger.MODES:
                cached = await ledger.balance(session, owner, mode)
                recomputed = await ledger.recompute_balance(session, owner, mode)
                assert cached == recomputed
                assert all(type(v) is int for v in (cached.posted, cached.held))
        mine = await ledger.balance(session, account_id, "live")
        assert (mine.posted, mine.held) == (ledger.MAX_AMOUNT + 100 - 6, 16)
        if db.url.startswith("sqlite"):  # stored as INTEGER, never REAL
            kinds = await session.execute(
                text(
                    "SELECT DISTINCT typeof(credits_posted), typeof(debits_posted),"
                    " typeof(debits_pending) FROM ledger_accounts"
                )
            )
            assert set(kinds) == {("integer", "integer", "integer")}


@pytest.mark.parametrize("amount", ABSURD)
async def test_finding_9_admin_credits_refuse_absurd_amounts(
    client: httpx2.AsyncClient, db: Database, amount: str
) -> None:
    account_id = await operator(client, db)
    before = await transfers(db)
    answer = await grant_form(client, account_id, amount)
    assert answer.status_code == 400
    assert "Credit amounts are whole numbers from 1 to 1,000,000,000,000" in answer.text
    assert await transfers(db) == before
    async with db.read() as session:
        assert (await ledger.balance(session, account_id, "live")).posted == 100


@pytest.mark.parametrize("amount", [ledger.MAX_AMOUNT + 1, 2**63 - 1, 10**20, 0, -1, 1.5])
async def test_the_ledger_refuses_out_of_range_amounts(db: Database, amount: Any) -> None:
    async with db.write() as session:
        account, _ = await accounts.get_or_create(session, "acme")
    for operation in (ledger.grant, ledger.debit):
        with pytest.raises(InvalidAmount, match="from 1 to 1,000,000,000,000"):
            async with db.write() as session:
                await operation(session, account.id, "live", amount, reason="x")
    assert await transfers(db) == 0


async def test_many_grants_cannot_pass_the_wallet_maximum(db: Database) -> None:
    async with db.write() as session:
        account, _ = await accounts.get_or_create(session, "acme")
    per_grant = ledger.MAX_AMOUNT
    async with db.write() as session:
        for _ in range(ledger.MAX_WALLET_CREDITS // per_grant):
            await ledger.grant(session, account.id, "live", per_grant, reason="fill")
    with pytest.raises(WalletFull, match="past 1,000,000,000,000,000"):
        async with db.write() as session:
            await ledger.grant(session, account.id, "live", 1, reason="one more")
    async with db.read() as session:
        balance = await ledger.balance(session, account.id, "live")
        assert balance.posted == ledger.MAX_WALLET_CREDITS
        assert balance == await ledger.recompute_balance(session, account.id, "live")
    assert await transfers(db) == ledger.MAX_WALLET_CREDITS // per_grant


async def test_the_database_itself_refuses_a_sum_past_64_bits(db: Database) -> None:
    """The last line below the ledger's checks: SQLite's triggers (an overflowing sum would
    become a REAL there), PostgreSQL's bigint."""
    async with db.write() as session:
        account, _ = await accounts.get_or_create(session, "acme")
        await ledger.grant(session, account.id, "live", 100, reason="x")
    with pytest.raises(DBAPIError):
        async with db.write() as session:
            await session.execute(
                text(
                    "UPDATE ledger_accounts SET credits_posted = credits_posted"
                    " + 9223372036854775807 WHERE id = :id"
                ),
                {"id": ledger.wallet_id(account.id, "live")},
            )
    if db.url.startswith("sqlite"):  # PostgreSQL's bigint takes 1.5 as the integer 2
        with pytest.raises(DBAPIError):
            async with db.write() as session:
                await session.execute(
                    text("UPDATE ledger_accounts SET credits_posted = 1.5 WHERE id = :id"),
                    {"id": ledger.wallet_id(account.id, "live")},
                )
    async with db.read() as session:
        assert (await ledger.balance(session, account.id, "live")).posted == 100


def mediagate(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = environment(settings.data_dir, settings.database_url)
    env["MEDIAGATE_SECRET_KEY"] = "test-secret-key"
    return subprocess.run(
        [sys.executable, "-m", "mediagate", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "args",
    [
        ("credits", "grant", "acme", "99999999999999999999"),
        ("credits", "grant", "acme", str(ledger.MAX_AMOUNT + 1)),
        ("credits", "grant", "acme", "-3"),
        ("keys", "create", "--account", "newco", "--credits", "9223372036854775807"),
    ],
)
async def test_finding_9_the_command_line_refuses_absurd_amounts(
    settings: Settings, db: Database, args: tuple[str, ...]
) -> None:
    async with db.write() as session:
        await accounts.get_or_create(session, "acme")
    done = mediagate(settings, *args)
    assert done.returncode == 2, done.stderr
    assert "Credit amounts are whole numbers from 1 to 1,000,000,000,000" in done.stderr
    assert await transfers(db) == 0
    async with db.read() as session:
        names = (await session.scalars(text("SELECT name FROM accounts"))).all()
    assert names == ["acme"]  # no key's account was made either


async def test_the_command_line_grants_the_largest_amount(settings: Settings, db: Database) -> None:
    async with db.write() as session:
        await accounts.get_or_create(session, "acme")
    done = mediagate(settings, "credits", "grant", "acme", str(ledger.MAX_AMOUNT))
    assert done.returncode == 0, done.stderr
    assert f"available {ledger.MAX_AMOUNT}" in done.stdout
