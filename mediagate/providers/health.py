"""Provider health for operators: breaker snapshots from every runner, recent failures."""

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mediagate.core.clock import utcnow
from mediagate.providers.models import ProviderHealth
from mediagate.providers.registry import ProviderRegistry
from mediagate.tasks.models import Task

STALE_AFTER = timedelta(minutes=5)


async def record_breakers(session: AsyncSession, registry: ProviderRegistry, worker: str) -> None:
    now = utcnow()
    for name, breaker in registry.breakers.items():
        row = await session.get(ProviderHealth, (name, worker))
        if row is None:
            row = ProviderHealth(provider=name, worker=worker)
            session.add(row)
        row.state = breaker.state
        row.consecutive_failures = breaker.failures
        row.errors_total = breaker.errors_total
        row.updated_at = now


@dataclass(frozen=True)
class ProviderStatus:
    name: str
    breakers: dict[str, str]
    """worker -> closed | open | half-open (runners seen in the last five minutes)."""
    errors_total: int
    tasks_last_hour: dict[str, int]
    """completed / in_progress / failed:<error type> -> count"""


async def provider_status(session: AsyncSession, name: str) -> ProviderStatus:
    now = utcnow()
    rows = (
        await session.scalars(
            select(ProviderHealth).where(
                ProviderHealth.provider == name, ProviderHealth.updated_at > now - STALE_AFTER
            )
        )
    ).all()
    counts = await session.execute(
        select(Task.status, Task.error_type, func.count())
        .where(Task.provider == name, Task.created_at > now - timedelta(hours=1))
        .group_by(Task.status, Task.error_type)
    )
    tasks = {
        (f"failed:{error}" if status == "failed" else status): int(n) for status, error, n in counts
    }
    return ProviderStatus(
        name=name,
        breakers={r.worker: r.state for r in rows},
        errors_total=sum(r.errors_total for r in rows),
        tasks_last_hour=tasks,
    )
