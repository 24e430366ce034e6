from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from mediagate.core.db import Base, UTCDateTime


class Account(Base):
    """Owns keys, credits (one live and one test wallet) and tasks."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    webhook_secret: Mapped[str | None] = mapped_column(String(64))
    """whsec_… secret that signs this account's task callbacks (made on first use)."""
