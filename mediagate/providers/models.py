from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
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
