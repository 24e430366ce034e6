from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from mediagate.core.db import Base, UTCDateTime


class Upload(Base):
    """An image a client uploaded to use as a reference; served from our storage."""

    __tablename__ = "uploads"
    __table_args__ = (
        # The retention sweeper's scan: uploads still kept, oldest first.
        Index(
            "ix_uploads_retention",
            "created_at",
            sqlite_where=text("expired_at IS NULL"),
            postgresql_where=text("expired_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    key: Mapped[str] = mapped_column(String(140), unique=True)
    format: Mapped[str] = mapped_column(String(8))
    bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When the retention sweeper deleted the file (null: it is kept)."""
    sweep_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """A sweeper's claim on the file until then (see Task.sweep_until)."""


class ExpiredFile(Base):
    """A storage key whose file the retention sweeper deleted: GET /files/{key} answers
    410 Gone for it (and 404 for a key that never existed)."""

    __tablename__ = "expired_files"

    key: Mapped[str] = mapped_column(String(140), primary_key=True)
    expired_at: Mapped[datetime] = mapped_column(UTCDateTime())
