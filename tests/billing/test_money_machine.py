"""A Hypothesis state machine over orders, Stripe events and redemption codes, driving the
real services (the webhook's store-then-handle, the reconciler's sweep) with the fake
Stripe's objects as a `Payments` in process. Events are delivered in any order, any
number of times, several at once; payments, expiries, refunds, spending and redemptions
interleave. After every step:
  credits granted = Σ paid orders' credits + Σ redeemed codes' credits,
  credits taken back = Σ orders' credits_taken_back, and the wallet = granted − taken
  back − spent, never below zero, the cached balance equal to the recomputed one;
  no order granted twice, and an order is granted iff it is paid (or refunded after);
  our paid orders are paid at Stripe (no credit without money);
  no code used beyond its uses, each use one redemption."""

import asyncio
import secrets
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from mediagate.accounts import service as accounts
from mediagate.billing import codes, events, orders
from mediagate.billing.errors import CodeNotRedeemable, InvalidCode
from mediagate.billing.models import Order, Redemption, RedemptionCode
from mediagate.billing.packages import load_packages
from mediagate.billing.reconciler import BillingReconciler
from mediagate.core.clock import utcnow
from mediagate.core.db import Database
from mediagate.core.settings import Settings
from mediagate.ledger import service as ledger
from mediagate.ledger.models import LedgerTransfer
from tests.billing.fake_stripe import FakeStripe

PACKAGES = list(load_packages(None).values())
SECRET = b"machine-secret"


class InProcessStripe:
    """The fake's objects behind the Payments protocol, without HTTP (speed)."""

    test_key = True

    def __init__(self, fake: FakeStripe) -> None:
        self.fake = fake

    async def create_checkout_session(self, params: dict[str, Any], *, idempotency_key: str) -> Any:
        with self.fake.lock:
            if idempotency_key not in self.fake.idempotent:
                self.fake.idempotent[idempotency_key] = self.fake._post(
                    "/v1/checkout/sessions", params
                )  # type: ignore[assignment]
            return self.fake.idempotent[idempotency_key]

    async def retrieve_session(self, session_id: str) -> dict[str, Any]:
        return dict(self.fake.sessions[session_id])

    async def create_refund(self, params: dict[str, Any], *, idempotency_key: str) -> Any:
        raise NotImplementedError

    async def list_events(self, types: tuple[str, ...], created_gte: int) -> list[dict[str, Any]]:
        return [e for e in reversed(self.fake.events) if e["type"] in types]

    def verify(self, payload: bytes, header: str) -> dict[str, Any]:
        raise NotImplementedError

    async def aclose(self) -> None:
        pass


def machine_for(settings_: Settings) -> type[RuleBasedStateMachine]:
    fake = FakeStripe()  # one Stripe for every example, as the database is one too

    class Money(RuleBasedStateMachine):
        sessions = Bundle("sessions")
        delivered = Bundle("events")
        issued = Bundle("codes")

        def __init__(self) -> None:
            super().__init__()
            self.loop = asyncio.new_event_loop()
            self.db = Database(settings_.db_url)
            self.fake = fake
            self.payments = InProcessStripe(self.fake)
            self.accounts = [self.run(self._account()) for _ in range(2)]
            self.spent = dict.fromkeys(self.accounts, 0)

        def run(self, coro: Any) -> Any:
            return self.loop.run_until_complete(coro)

        async def _account(self) -> str:
            async with self.db.write() as s:
                account, _ = await accounts.get_or_create(s, f"mm-{secrets.token_hex(6)}")
            return account.id

        def teardown(self) -> None:
            self.run(self.db.dispose())
            self.loop.close()

        async def _deliver(self, event: dict[str, Any]) -> str:
            """The webhook's two units: store, then handle."""
            async with self.db.write() as s:
                await events.store(s, event, __import__("json").dumps(event))
            async with self.db.write() as s:
                return await events.handle(s, str(event["id"]), livemode=False)

        @rule(target=sessions, package=st.sampled_from(PACKAGES), who=st.integers(0, 1))
        def buy(self, package: Any, who: int) -> str:
            async def go() -> str:
                async with self.db.write() as s:
                    order = await orders.create_order(
                        s,
                        account_id=self.accounts[who],
                        email="m@example.com",
                        package=package,
                        mode="live",
                        check_after_s=600,
                    )
                checkout = await self.payments.create_checkout_session(
                    orders.checkout_params(order, "http://gw.test"),
                    idempotency_key=orders.idempotency_key(order.id),
                )
                async with self.db.write() as s:
                    await orders.attach_session(s, order.id, checkout)
                return str(checkout["id"])

            return self.run(go())

        @rule(target=delivered, session_id=sessions)
        def pay(self, session_id: str) -> Any:
            if self.fake.sessions[session_id]["status"] != "open":
                return None
            return self.fake.pay(session_id)

        @rule(target=delivered, session_id=sessions)
        def expire(self, session_id: str) -> Any:
            if self.fake.sessions[session_id]["status"] != "open":
                return None
            return self.fake.expire(session_id)

        @rule(target=delivered, session_id=sessions, share=st.sampled_from([None, 1, 3, 7]))
        def refund(self, session_id: str, share: int | None) -> Any:
            payment_intent = self.fake.sessions[session_id].get("payment_intent")
            if not payment_intent:
                return None
            charge = self.fake.charges[payment_intent]
            left = charge["amount"] - charge["amount_refunded"]
            if left <= 0:
                return None
            amount = None if share is None else max(1, min(left, charge["amount"] * share // 10))
            return self.fake.refund(payment_intent, amount)

        @rule(event=delivered)
        def deliver(self, event: Any) -> None:
            if event is not None:
                self.run(self._deliver(event))

        @rule(event=delivered, copies=st.integers(2, 5))
        def deliver_at_once(self, event: Any, copies: int) -> None:
            if event is None:
                return

            async def go() -> None:
                outcomes = await asyncio.gather(*(self._deliver(event) for _ in range(copies)))
                acted = [o for o in outcomes if not o.startswith(("duplicate", "waiting"))]
                assert len(acted) <= 1, outcomes

            self.run(go())

        @rule(target=delivered, event=delivered)
        def twin(self, event: Any) -> Any:
            """The same news under another event id (completed, then
            async_payment_succeeded; a resent refund notice)."""
            if event is None:
                return None
            kind = event["type"]
            if kind == "checkout.session.completed":
                kind = "checkout.session.async_payment_succeeded"
            return {**event, "id": f"evt_twin_{secrets.token_hex(6)}", "type": kind}

        @rule(session_id=sessions)
        def reconciler_read_before_the_webhook(self, session_id: str) -> None:
            """A reconciler that saw the order pending settles it now, whatever
            happened since."""
            checkout = dict(self.fake.sessions[session_id])

            async def go() -> None:
                async with self.db.write() as s:
                    if checkout["status"] == "complete":
                        await orders.settle_paid(s, checkout, event_id=None)
                    elif checkout["status"] == "expired":
                        await orders.expire(s, checkout)

            self.run(go())

        @rule()
        def reconcile(self) -> None:
            async def go() -> None:
                async with self.db.write() as s:
                    await s.execute(
                        update(Order)
                        .where(Order.status == "pending")
                        .values(next_check_at=utcnow() - timedelta(seconds=1))
                    )
                await BillingReconciler(self.db, self.payments, settings_).sweep()  # type: ignore[arg-type]

            self.run(go())

        @rule(who=st.integers(0, 1), amount=st.integers(1, 3000))
        def spend(self, who: int, amount: int) -> None:
            account = self.accounts[who]

            async def go() -> None:
                async with self.db.write() as s:
                    have = (await ledger.balance(s, account, "live")).available
                    if have:
                        await ledger.debit(s, account, "live", min(have, amount), reason="spent")
                        self.spent[account] += min(have, amount)

            self.run(go())

        @rule(target=issued, credits=st.integers(1, 500), uses=st.integers(1, 3))
        def new_code(self, credits: int, uses: int) -> str:
            async def go() -> str:
                async with self.db.write() as s:
                    _, made = await codes.create_batch(
                        s, SECRET, credits=credits, count=1, uses=uses, created_by="machine"
                    )
                return made[0]

            return self.run(go())

        @rule(code=issued, who=st.integers(0, 1), at_once=st.integers(1, 3))
        def redeem(self, code: str, who: int, at_once: int) -> None:
            async def one() -> bool:
                try:
                    async with self.db.write() as s:
                        await codes.redeem(
                            s, SECRET, code, account_id=self.accounts[who], key_mode="live"
                        )
                except (CodeNotRedeemable, InvalidCode):
                    return False
                except IntegrityError:  # the unique (code, account) index, at once
                    return False
                return True

            async def go() -> None:
                granted = await asyncio.gather(*(one() for _ in range(at_once)))
                assert sum(granted) <= 1  # one account, one use of a code

            self.run(go())

        @rule()
        def everything_arrives(self) -> None:
            """All events, oldest first, then a sweep: we agree with Stripe."""

            async def go() -> None:
                async with self.db.read() as s:
                    ours = {
                        o.stripe_session_id: o
                        for o in await s.scalars(
                            select(Order).where(Order.account_id.in_(self.accounts))
                        )
                    }
                intents = {self.fake.sessions[sid].get("payment_intent") for sid in ours}
                for event in list(self.fake.events):
                    obj = event["data"]["object"]
                    if obj.get("id") in ours or obj.get("payment_intent") in intents:
                        await self._deliver(event)
                async with self.db.read() as s:
                    ours = {
                        o.stripe_session_id: o
                        for o in await s.scalars(
                            select(Order).where(Order.account_id.in_(self.accounts))
                        )
                    }
                for sid, order in ours.items():
                    checkout = self.fake.sessions[str(sid)]
                    if checkout["payment_status"] == "paid":
                        assert order.status in ("paid", "refunded"), (sid, order.status)
                        charge = self.fake.charges[checkout["payment_intent"]]
                        assert order.amount_refunded == charge["amount_refunded"]
                    elif checkout["status"] == "expired":
                        assert order.status == "expired"

            self.run(go())

        @invariant()
        def books_balance(self) -> None:
            async def go() -> None:
                async with self.db.read() as s:
                    all_orders = list(
                        await s.scalars(select(Order).where(Order.account_id.in_(self.accounts)))
                    )
                    transfers = list(await s.scalars(select(LedgerTransfer)))
                    redemptions = list(await s.scalars(select(Redemption)))
                    stored_codes = list(await s.scalars(select(RedemptionCode)))
                    transfers = [
                        t
                        for t in transfers
                        if t.credit_account_id.split(":")[0] in self.accounts
                        or t.debit_account_id.split(":")[0] in self.accounts
                    ]
                    for account in self.accounts:
                        wallet = ledger.wallet_id(account, "live")
                        mine = [o for o in all_orders if o.account_id == account]
                        granted = sum(
                            t.amount
                            for t in transfers
                            if t.kind == "grant" and t.credit_account_id == wallet
                        )
                        taken_back = sum(
                            t.amount
                            for t in transfers
                            if t.kind == "debit"
                            and t.debit_account_id == wallet
                            and (t.reason or "").startswith("Refund")
                        )
                        assert granted == sum(
                            o.credits for o in mine if o.grant_transfer_id is not None
                        ) + sum(r.credits for r in redemptions if r.account_id == account)
                        assert taken_back == sum(o.credits_taken_back for o in mine)
                        cached = await ledger.balance(s, account, "live")
                        assert cached == await ledger.recompute_balance(s, account, "live")
                        assert cached.available >= 0
                        assert cached.posted == granted - taken_back - self.spent[account]
                    for o in all_orders:
                        grants = [
                            t for t in transfers if t.kind == "grant" and o.id in (t.reason or "")
                        ]
                        assert len(grants) == (1 if o.status in ("paid", "refunded") else 0)
                        assert (o.grant_transfer_id is not None) == bool(grants)
                        assert o.credits_taken_back + o.credits_unrecovered <= o.credits
                        if o.status in ("paid", "refunded"):
                            assert self.fake.sessions[o.stripe_session_id]["payment_status"] == (
                                "paid"
                            )
                    for c in stored_codes:
                        assert 0 <= c.uses <= c.max_uses
                        assert c.uses == sum(1 for r in redemptions if r.code_id == c.id)
                    assert await s.scalar(select(func.count()).select_from(Redemption)) == len(
                        {(r.code_id, r.account_id) for r in redemptions}
                    )

            self.run(go())

    return Money


def test_money_in_exactly_once(settings: Settings, request: pytest.FixtureRequest) -> None:
    examples = 120 if request.config.getoption("--db") == "sqlite" else 60
    run_state_machine_as_test(
        machine_for(settings),
        settings=hsettings(
            max_examples=examples,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
