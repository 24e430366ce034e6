"""The usage charts: credits charged per day and tasks per model with success rate, over
a chosen range, on both databases."""

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx2
import pytest

from mediagate.core.db import Database
from mediagate.ledger.models import LedgerTransfer
from mediagate.ledger.service import wallet_id
from mediagate.tasks.models import Task
from mediagate.web import charts, usage_stats
from mediagate.web.usage_stats import Day, ModelUsage
from tests.factories import KeyFactory

TODAY = date(2026, 11, 30)


def at(days_ago: int, hour: int = 12) -> datetime:
    return datetime.combine(TODAY - timedelta(days=days_ago), datetime.min.time(), UTC).replace(
        hour=hour
    )


def task(n: int, account_id: str, model: str, status: str, when: datetime, mode: str) -> Task:
    return Task(
        id=f"task_chart_{n}",
        account_id=account_id,
        key_id="key",
        mode=mode,
        model=model,
        type="t",
        params={},
        price=6,
        status=status,
        step="done",
        next_run_at=when,
        deadline_at=when,
        attempt=0,
        step_errors=0,
        polls=0,
        created_at=when,
        updated_at=when,
    )


def capture(account_id: str, amount: int, when: datetime, mode: str = "live") -> LedgerTransfer:
    return LedgerTransfer(
        kind="capture",
        debit_account_id=wallet_id(account_id, mode),
        credit_account_id=f"@revenue:{mode}",
        amount=amount,
        created_at=when,
    )


@pytest.fixture
async def history(db: Database, keys: KeyFactory) -> str:
    live = await keys(account="chart", mode="live", credits=1000)
    await keys(account="chart", mode="test", credits=10)
    other = await keys(account="someone-else", mode="live", credits=1000)
    rows: list[Any] = [
        capture(live.account_id, 6, at(0, 1)),
        capture(live.account_id, 16, at(0, 23)),  # the same UTC day
        capture(live.account_id, 6, at(2)),
        capture(live.account_id, 100, at(40)),  # outside 30 days
        capture(live.account_id, 7, at(1), mode="test"),  # the other mode
        capture(other.account_id, 50, at(0)),  # another account
    ]
    statuses = [("kling-image-o1", "completed")] * 3 + [
        ("kling-image-o1", "failed"),
        ("flux-schnell", "completed"),
        ("flux-schnell", "in_progress"),
        ("kling-v3-omni", "in_progress"),
    ]
    for n, (model, status) in enumerate(statuses):
        rows.append(task(n, live.account_id, model, status, at(n % 3), "live"))
    rows.append(task(90, live.account_id, "flux-schnell", "completed", at(40), "live"))
    rows.append(task(91, live.account_id, "flux-schnell", "completed", at(0), "test"))
    rows.append(task(92, other.account_id, "flux-schnell", "completed", at(0), "live"))
    async with db.write() as session:
        session.add_all(rows)
    return live.account_id


async def test_credits_per_day_fill_every_day_of_the_range(db: Database, history: str) -> None:
    async with db.read() as session:
        days = await usage_stats.credits_per_day(session, history, "live", 7, TODAY)
        month = await usage_stats.credits_per_day(session, history, "live", 30, TODAY)
        test_mode = await usage_stats.credits_per_day(session, history, "test", 7, TODAY)
    assert [d.day for d in days] == [TODAY - timedelta(n) for n in range(6, -1, -1)]
    assert {d.day: d.credits for d in days if d.credits} == {
        TODAY: 22,
        TODAY - timedelta(2): 6,
    }
    assert len(month) == 30 and sum(d.credits for d in month) == 28
    assert {d.day: d.credits for d in test_mode if d.credits} == {TODAY - timedelta(1): 7}


async def test_tasks_per_model_with_success_rate(db: Database, history: str) -> None:
    async with db.read() as session:
        usage = await usage_stats.tasks_per_model(session, history, "live", 30, TODAY)
        longer = await usage_stats.tasks_per_model(session, history, "live", 90, TODAY)
    assert usage == [
        ModelUsage("kling-image-o1", 4, 3, 1),
        ModelUsage("flux-schnell", 2, 1, 0),
        ModelUsage("kling-v3-omni", 1, 0, 0),
    ]
    assert [u.success_rate for u in usage] == [0.75, 1.0, None]
    assert {u.model: u.tasks for u in longer}["flux-schnell"] == 3


def test_chart_geometry() -> None:
    days = [Day(TODAY - timedelta(n), c) for n, c in zip(range(2, -1, -1), (0, 37, 5), strict=True)]
    chart = charts.day_chart(days)
    assert [charts.nice_ceiling(v) for v in (0, 4, 5, 37, 81, 1999)] == [4, 4, 8, 40, 200, 2000]
    assert [t[1] for t in chart.ticks] == [0, 10, 20, 30, 40]
    tallest = max(chart.bars, key=lambda b: b.height)
    assert tallest.value == 37 and tallest.y + tallest.height == chart.ticks[0][0]
    assert chart.bars[0].height == 0 and chart.total == 42
    many = charts.day_chart([Day(TODAY - timedelta(n), 1) for n in range(90)])
    assert len(many.dates) <= 7
    rows = charts.model_rows([ModelUsage("a", 10, 9, 1), ModelUsage("b", 5, 0, 0)])
    assert [(r.width_pct, r.success_pct) for r in rows] == [(100.0, 90), (50.0, None)]


async def test_usage_page_draws_both_charts(client: httpx2.AsyncClient, history: str) -> None:
    from tests.web.helpers import sign_up

    await sign_up(client, "charts@example.com")
    page = (await client.get("/usage", params={"range": "7", "chart_mode": "test"})).text
    assert 'data-chart="credits-per-day"' in page
    assert len(re.findall(r"data-day=", page)) == 7
    assert "No tasks in this range." in page  # a new user's account
    assert '<option value="7" selected>' in page
    bad = await client.get("/usage", params={"range": "5"})
    assert bad.status_code == 400 and "range must be one of 7, 30, 90" in bad.text
