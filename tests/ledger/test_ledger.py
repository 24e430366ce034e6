import asyncio
import secrets

import httpx2
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from mediagate.accounts import service as accounts
from mediagate.core.db import Database
from mediagate.core.settings import Settings
from mediagate.ledger import service as ledger
from mediagate.ledger.errors import InsufficientCredits, InvalidAmount
from mediagate.ledger.models import LedgerTransfer
from tests.factories import KeyFactory, generation


async def new_account(db: Database, name: str = "acme") -> str:
    async with db.write() as session:
        account, _ = await accounts.get_or_create(session, name)
    return account.id


async def test_hold_capture_release(db: Database) -> None:
    acc = await new_account(db)
    async with db.write() as s:
        await ledger.grant(s, acc, "live", 20, reason="top-up")
        h1 = await ledger.hold(s, acc, "live", 6, task_id="t1")
        h2 = await ledger.hold(s, acc, "live", 6, task_id="t2")
        assert await ledger.balance(s, acc, "live") == ledger.Balance(posted=20, held=12)
        await ledger.capture(s, h1)
        await ledger.release(s, h2)
        balance = await ledger.balance(s, acc, "live")
        assert (balance.posted, balance.held, balance.available) == (14, 0, 14)
        assert await ledger.recompute_balance(s, acc, "live") == balance
        # Test credits are a separate wallet.
        assert await ledger.balance(s, acc, "test") == ledger.Balance(0, 0)


async def test_a_hold_resolves_once(db: Database) -> None:
    acc = await new_account(db)
    async with db.write() as s:
        await ledger.grant(s, acc, "test", 10, reason="x")
        hold_id = await ledger.hold(s, acc, "test", 6, task_id="t1")
        await ledger.capture(s, hold_id)
    with pytest.raises(IntegrityError):
        async with db.write() as s:
            await ledger.release(s, hold_id)
    async with db.read() as s:
        assert await ledger.balance(s, acc, "test") == ledger.Balance(posted=4, held=0)


async def test_overdraw_is_refused_with_the_numbers(db: Database) -> None:
    acc = await new_account(db)
    async with db.write() as s:
        await ledger.grant(s, acc, "live", 10, reason="x")
    with pytest.raises(InsufficientCredits, match="16 needed, 10 available"):
        async with db.write() as s:
            await ledger.hold(s, acc, "live", 16, task_id="t")
    with pytest.raises(InsufficientCredits):
        async with db.write() as s:
            await ledger.debit(s, acc, "live", 11, reason="correction")


@pytest.mark.parametrize("amount", [0, -5, True])
async def test_amounts_are_positive_integers(db: Database, amount: int) -> None:
    acc = await new_account(db)
    with pytest.raises(InvalidAmount):
        async with db.write() as s:
            await ledger.grant(s, acc, "live", amount, reason="x")


async def test_50_concurrent_submits_against_10_holds(
    client: httpx2.AsyncClient, keys: KeyFactory, db: Database
) -> None:
    key = await keys(credits=60)  # exactly 10 tasks of 6 credits
    responses = await asyncio.gather(
        *(
            client.post("/api/v1/images/generations", json=generation(), headers=key.headers)
            for _ in range(50)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 10 and statuses.count(402) == 40
    async with db.read() as s:
        balance = await ledger.balance(s, key.account_id, "test")
        assert (
            balance
            == ledger.Balance(posted=60, held=60)
            == await ledger.recompute_balance(s, key.account_id, "test")
        )
        holds = (await s.scalars(select(LedgerTransfer).where(LedgerTransfer.kind == "hold"))).all()
        assert len(holds) == 10


ops = st.lists(
    st.one_of(
        st.tuples(st.just("grant"), st.integers(1, 30)),
        st.tuples(st.just("debit"), st.integers(1, 30)),
        st.tuples(st.just("hold"), st.sampled_from([6, 16])),
        st.tuples(st.just("capture"), st.integers(0, 20)),
        st.tuples(st.just("release"), st.integers(0, 20)),
    ),
    max_size=25,
)


@hsettings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=ops)
def test_ledger_invariants_hold_for_any_sequence(
    settings: Settings, ops: list[tuple[str, int]]
) -> None:
    asyncio.run(_check_sequence(settings.db_url, ops))


async def _check_sequence(url: str, ops: list[tuple[str, int]]) -> None:
    db = Database(url)
    try:
        acc = await new_account(db, f"prop-{secrets.token_hex(6)}")
        open_holds: list[tuple[int, int]] = []
        posted = held = holds_made = 0
        for op, n in ops:
            try:
                async with db.write() as s:
                    if op == "grant":
                        await ledger.grant(s, acc, "live", n, reason="p")
                        posted += n
                    elif op == "debit":
                        await ledger.debit(s, acc, "live", n, reason="p")
                        posted -= n
                    elif op == "hold":
                        hold_id = await ledger.hold(
                            s, acc, "live", n, task_id=f"{acc}-{holds_made}"
                        )
                        holds_made += 1
                        open_holds.append((hold_id, n))
                        held += n
                    elif open_holds:
                        hold_id, amount = open_holds.pop(n % len(open_holds))
                        await (ledger.capture if op == "capture" else ledger.release)(s, hold_id)
                        held -= amount
                        posted -= amount if op == "capture" else 0
            except InsufficientCredits:
                assert op in ("debit", "hold") and n > posted - held
            async with db.read() as s:
                balance = await ledger.balance(s, acc, "live")
                assert balance == ledger.Balance(posted, held)
                assert balance.available >= 0
                assert await ledger.recompute_balance(s, acc, "live") == balance
    finally:
        await db.dispose()
