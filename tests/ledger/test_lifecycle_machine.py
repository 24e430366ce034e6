"""A Hypothesis state machine over tasks and credits, driving the real services and the
real runner write-backs: submit, succeed, fail, expire, duplicate finalize, concurrent
finalize (a stale owner), idempotent replay. After every step:
  every transfer moves a positive amount between two different accounts (sums to zero),
  available >= 0, each hold resolves at most once (exactly once for a finished task),
  a task is captured at most once, the cached balance equals the one recomputed
  from the transfers, and the account's counter of tasks in progress equals the count."""

import asyncio
import contextlib
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

from mediagate.accounts import service as accounts
from mediagate.accounts.models import Account
from mediagate.catalog.loader import load_catalog
from mediagate.catalog.validation import validate_request
from mediagate.core.clock import utcnow
from mediagate.core.db import Database
from mediagate.core.errors import MediagateError
from mediagate.core.settings import Settings
from mediagate.keys.service import AuthedKey
from mediagate.ledger import service as ledger
from mediagate.ledger.models import LedgerTransfer
from mediagate.runner import repository
from mediagate.runner.runner import LeaseLost, Runner
from mediagate.runner.steps import Finish
from mediagate.tasks import service as tasks
from mediagate.tasks.models import Task

CATALOG = load_catalog()
BODIES = [
    {"model": "kling-image-o1", "prompt": "fox"},
    {
        "model": "kling-image-o1",
        "prompt": "hero",
        "type": "ai-multi-shot",
        "images": ["https://e.com/a.png"],
    },
]


def machine_for(settings_: Settings) -> type[RuleBasedStateMachine]:
    class Lifecycle(RuleBasedStateMachine):
        submitted = Bundle("submitted")

        def __init__(self) -> None:
            super().__init__()
            self.loop = asyncio.new_event_loop()
            self.db = Database(settings_.db_url)
            self.runner = Runner(
                self.db,
                settings_,
                catalog=CATALOG,
                providers=None,
                storage=None,
                references=None,
                name="a",
            )  # type: ignore[arg-type]
            self.other = Runner(
                self.db,
                settings_,
                catalog=CATALOG,
                providers=None,
                storage=None,
                references=None,
                name="b",
            )  # type: ignore[arg-type]
            self.account = self.run(self._account())
            self.caller = AuthedKey(id="key_machine", account_id=self.account, mode="test")
            self.granted = 0

        def run(self, coro: Any) -> Any:
            return self.loop.run_until_complete(coro)

        async def _account(self) -> str:
            async with self.db.write() as s:
                account, _ = await accounts.get_or_create(s, f"m-{secrets.token_hex(6)}")
            return account.id

        def teardown(self) -> None:
            self.run(self.db.dispose())
            self.loop.close()

        @rule(amount=st.integers(1, 40))
        def grant(self, amount: int) -> None:
            async def go() -> None:
                async with self.db.write() as s:
                    await ledger.grant(s, self.account, "test", amount, reason="machine")

            self.run(go())
            self.granted += amount

        @rule(
            target=submitted, body=st.sampled_from(BODIES), key=st.sampled_from([None, "k1", "k2"])
        )
        def submit(self, body: dict[str, Any], key: str | None) -> str:
            async def go() -> str:
                request = validate_request(CATALOG, body, "images/generations")
                async with self.db.write() as s:
                    sub = await tasks.submit_generation(
                        s,
                        caller=self.caller,
                        request=request,
                        max_in_flight=10_000,
                        idempotency_key=key,
                        fingerprint=tasks.request_fingerprint(body) if key else None,
                    )
                return sub.task_id

            try:
                return self.run(go())
            except MediagateError:  # 402, or 422 for a reused key with another body
                return ""

        async def _claim(self, runner: Runner, task_id: str) -> Task | None:
            async with self.db.write() as s:
                await s.execute(
                    update(Task)
                    .where(Task.id == task_id, Task.lease_owner.is_not(None))
                    .values(lease_expires_at=utcnow() - timedelta(seconds=1))
                )
                await repository.requeue_expired_leases(s, utcnow())
                await s.execute(
                    update(Task)
                    .where(Task.id == task_id)
                    .values(next_run_at=utcnow() - timedelta(days=1))
                )
                claimed = await repository.claim_due(
                    s, worker=runner.worker, limit=1_000, lease_s=30, now=utcnow()
                )
            mine = [t for t in claimed if t.id == task_id]
            async with self.db.write() as s:  # give the others back
                for t in claimed:
                    if t.id != task_id:
                        await s.execute(
                            update(Task)
                            .where(Task.id == t.id)
                            .values(lease_owner=None, lease_expires_at=None)
                        )
            return mine[0] if mine else None

        def _finish(self, task_id: str, outcome: Finish, *, runner: Runner | None = None) -> None:
            async def go() -> None:
                task = await self._claim(runner or self.runner, task_id)
                if task is None:
                    return  # already finished
                with contextlib.suppress(LeaseLost):
                    await (runner or self.runner)._finish(task, outcome, utcnow())

            if task_id:
                self.run(go())

        @rule(task_id=submitted)
        def succeed(self, task_id: str) -> None:
            self._finish(task_id, Finish("completed"))

        @rule(task_id=submitted)
        def fail(self, task_id: str) -> None:
            self._finish(task_id, Finish("failed", "generation_failed", "machine"))

        @rule(task_id=submitted)
        def expire(self, task_id: str) -> None:
            async def go() -> None:
                async with self.db.write() as s:
                    await s.execute(
                        update(Task)
                        .where(Task.id == task_id)
                        .values(deadline_at=utcnow() - timedelta(seconds=1))
                    )
                task = await self._claim(self.runner, task_id)
                if task is not None:
                    outcome = await self.runner._run_step(task)  # the deadline check answers
                    assert isinstance(outcome, Finish) and outcome.error_type == "timeout"
                    await self.runner._finish(task, outcome, utcnow())

            if task_id:
                self.run(go())

        @rule(task_id=submitted)
        def duplicate_finalize(self, task_id: str) -> None:
            """Finish, then finish again with the same (now stale) claim."""

            async def go() -> None:
                task = await self._claim(self.runner, task_id)
                if task is None:
                    return
                await self.runner._finish(task, Finish("completed"), utcnow())
                with pytest.raises(LeaseLost):
                    await self.runner._finish(task, Finish("completed"), utcnow())

            if task_id:
                self.run(go())

        @rule(task_id=submitted)
        def concurrent_finalize(self, task_id: str) -> None:
            """A stalls, loses its lease to B; both try to finish: only B's write counts."""

            async def go() -> None:
                stale = await self._claim(self.runner, task_id)
                if stale is None:
                    return
                fresh = await self._claim(self.other, task_id)
                assert fresh is not None and fresh.attempt == stale.attempt + 1
                results = await asyncio.gather(
                    self.runner._finish(
                        stale, Finish("failed", "generation_failed", "a"), utcnow()
                    ),
                    self.other._finish(fresh, Finish("completed"), utcnow()),
                    return_exceptions=True,
                )
                assert isinstance(results[0], LeaseLost) and results[1] is None

            if task_id:
                self.run(go())

        @invariant()
        def books_balance(self) -> None:
            async def go() -> None:
                async with self.db.read() as s:
                    transfers = (
                        await s.scalars(
                            select(LedgerTransfer).where(
                                (LedgerTransfer.debit_account_id == f"{self.account}:test")
                                | (LedgerTransfer.credit_account_id == f"{self.account}:test")
                            )
                        )
                    ).all()
                    assert all(
                        t.amount > 0 and t.debit_account_id != t.credit_account_id
                        for t in transfers
                    )
                    holds = {t.id: t for t in transfers if t.kind == "hold"}
                    resolutions: dict[int, list[str]] = {}
                    for t in transfers:
                        if t.pending_id is not None:
                            resolutions.setdefault(t.pending_id, []).append(t.kind)
                    assert all(len(r) == 1 for r in resolutions.values())
                    captured: dict[str, int] = {}
                    for t in transfers:
                        if t.kind == "capture" and t.task_id:
                            captured[t.task_id] = captured.get(t.task_id, 0) + 1
                    assert all(n == 1 for n in captured.values())
                    rows = (
                        await s.execute(
                            select(Task.id, Task.status, Task.hold_id).where(
                                Task.account_id == self.account
                            )
                        )
                    ).all()
                    for task_id, status, hold_id in rows:
                        kinds = resolutions.get(hold_id, [])
                        expected = {
                            "in_progress": [],
                            "completed": ["capture"],
                            "failed": ["release"],
                        }[status]
                        assert kinds == expected, (task_id, status, kinds)
                    cached = await ledger.balance(s, self.account, "test")
                    assert cached.available >= 0
                    assert cached == await ledger.recompute_balance(s, self.account, "test")
                    assert cached.held == sum(
                        holds[h].amount for h in holds if h not in resolutions
                    )
                    assert await s.scalar(
                        select(func.count())
                        .select_from(Task)
                        .where(Task.account_id == self.account)
                    ) == len(holds)
                    in_progress = sum(1 for _, status, _ in rows if status == "in_progress")
                    counter = await s.scalar(
                        select(Account.tasks_in_progress).where(Account.id == self.account)
                    )
                    assert counter == in_progress

            self.run(go())

    return Lifecycle


def test_task_and_ledger_lifecycle(settings: Settings, request: pytest.FixtureRequest) -> None:
    examples = 250 if request.config.getoption("--db") == "sqlite" else 150
    run_state_machine_as_test(
        machine_for(settings),
        settings=hsettings(
            max_examples=examples,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
