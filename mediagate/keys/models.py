from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mediagate.core.db import Base, UTCDateTime


class ApiKey(Base):
    """An API key. Only an HMAC of the secret is stored; `hint` is for people."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    mode: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(200), default="")
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Limits (keys/limits.py); NULL means none.
    allowed_models: Mapped[list[str] | None] = mapped_column(JSON)
    allowed_networks: Mapped[list[str] | None] = mapped_column(JSON)
    cap_day: Mapped[int | None] = mapped_column(Integer)
    cap_month: Mapped[int | None] = mapped_column(Integer)
    cap_total: Mapped[int | None] = mapped_column(Integer)


class KeySpend(Base):
    """Credits a key with a spending cap has committed in one period (`day:2026-12-03`,
    `month:2026-12`, `total`): raised with each hold, lowered when a hold is released,
    so it counts what is held or charged. Only capped keys have rows."""

    __tablename__ = "key_spend"

    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"), primary_key=True)
    period: Mapped[str] = mapped_column(String(20), primary_key=True)
    credits: Mapped[int] = mapped_column(BigInteger, default=0)
