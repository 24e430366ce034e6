from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from mediagate.core.db import Base, UTCDateTime


class Task(Base):
    """One generation. The runner moves it step by step; `attempt` fences each lease."""

    __tablename__ = "tasks"
    __table_args__ = (
        Index(
            "ix_tasks_due",
            "next_run_at",
            sqlite_where=text("status = 'in_progress' AND lease_owner IS NULL"),
            postgresql_where=text("status = 'in_progress' AND lease_owner IS NULL"),
        ),
        Index("ix_tasks_account_status", "account_id", "status"),
        # Newest-first pages of an account's tasks, keyset on (created_at, id): the id
        # breaks ties, so the index alone yields each page in order (tasks/listing.py).
        Index("ix_tasks_account_created_id", "account_id", "created_at", "id"),
        # The retention sweeper's scan: finished tasks whose files are still kept, oldest
        # first per mode (media/retention.py); a swept task leaves the index.
        Index(
            "ix_tasks_retention",
            "mode",
            "completed_at",
            sqlite_where=text("files_expired_at IS NULL AND completed_at IS NOT NULL"),
            postgresql_where=text("files_expired_at IS NULL AND completed_at IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    key_id: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(8))
    model: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(50))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    price: Mapped[int] = mapped_column(Integer)
    hold_id: Mapped[int | None] = mapped_column(Integer)
    callback_url: Mapped[str | None] = mapped_column(Text)

    status: Mapped[str] = mapped_column(String(16))
    """in_progress | completed | failed"""
    step: Mapped[str] = mapped_column(String(16))
    """prepare | submit | submitting | poll | store | finalize | done"""
    next_run_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deadline_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    """Incremented by every claim; write-backs are fenced on it."""
    step_errors: Mapped[int] = mapped_column(Integer, default=0)
    polls: Mapped[int] = mapped_column(Integer, default=0)

    provider: Mapped[str | None] = mapped_column(String(32))
    upstream_id: Mapped[str | None] = mapped_column(String(200))
    prepared: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """What prepare learned: checked reference images (stored copies), resolved auto ratio."""
    outputs: Mapped[list[str] | None] = mapped_column(JSON)
    """Result references returned by the provider, before mirroring."""
    images: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    """Stored results: [{"key", "width", "height", "thumb": {"key", "width", "height"}}]
    (no "thumb" on results stored before thumbnails, or that Pillow could not scale)."""
    videos: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    """Stored video results: [{"key", "width", "height", "duration_s", "content_type",
    "poster": {"key", "width", "height"}}]."""
    error_type: Mapped[str | None] = mapped_column(String(50))
    error_message: Mapped[str | None] = mapped_column(Text)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    files_expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When the retention sweeper deleted the task's files (null: they are kept)."""
    sweep_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """A sweeper's claim on the task's files until then (another sweeper skips it; a
    crashed sweeper's claim simply runs out and the files are deleted again)."""


class IdempotencyKey(Base):
    """A client's Idempotency-Key, stored in the same transaction as its task and hold."""

    __tablename__ = "idempotency_keys"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    task_id: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
