from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mediagate.core.db import Base, UTCDateTime


class SandboxJob(Base):
    """The sandbox's own "upstream" state: one row per task it accepted, keyed by our
    reference, so a replayed submit finds the job instead of creating a second one."""

    __tablename__ = "sandbox_jobs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    reference: Mapped[str] = mapped_column(String(40), unique=True)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ready_at: Mapped[datetime] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """Set by a cancel that came before `ready_at`: the job then never finishes."""


class ProviderHealth(Base):
    """Each runner's view of each provider (its breaker), written every reconcile tick so
    operators can see it (`mediagate providers`) without asking every process."""

    __tablename__ = "provider_health"

    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    worker: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    consecutive_failures: Mapped[int] = mapped_column(Integer)
    errors_total: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
