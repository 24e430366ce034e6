from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mediagate.core.db import Base, UTCDateTime


class Account(Base):
    """Owns keys, credits (one live and one test wallet) and tasks."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    webhook_secret_live: Mapped[str | None] = mapped_column(String(64))
    """whsec_… secret that signs the callbacks of this account's live tasks."""
    webhook_secret_test: Mapped[str | None] = mapped_column(String(64))
    """…and of its test tasks: its own secret, so what a test key can read (and a sandbox
    receiver holds) cannot forge a live callback."""
    tasks_in_progress: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Tasks accepted and not finished yet, kept by the transactions that accept and finish
    them: the in-flight limit reads this one row instead of counting tasks."""


class User(Base):
    """A person who signs in to the dashboard; each user has one account."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    display_name: Mapped[str | None] = mapped_column(String(100))
    """Shown in the header instead of the email, when set."""
    totp_secret: Mapped[str | None] = mapped_column(String(200))
    """The TOTP secret, Fernet-encrypted (accounts/totp.py); set at enrolment, in use once
    `totp_enabled_at` is set."""
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    """The time step of the last code accepted: a code is taken once, never replayed."""
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    """Deleted by its owner: cannot sign in; its tasks and files are purged after the grace
    period (accounts/purge.py). The email is moved to `deleted_email`, freeing it."""
    deleted_email: Mapped[str | None] = mapped_column(String(254))
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When the user opened the link mailed to `email` (None: not confirmed yet)."""
    low_balance_threshold: Mapped[int | None] = mapped_column(BigInteger)
    """Mail the user when the live balance falls below this many credits (None: never)."""
    low_balance_alerted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When the one alert of the current dip below the threshold was mailed; cleared
    (re-armed) once the balance is back at or above it."""


class RecoveryCode(Base):
    """A single-use two-factor recovery code; only its HMAC is kept."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class EmailToken(Base):
    """A single-use link mailed to a user (accounts/email_tokens.py). Only the token's
    SHA-256 is kept: the database never holds a working link."""

    __tablename__ = "email_tokens"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    """SHA-256 (hex) of the token in the link."""
    purpose: Mapped[str] = mapped_column(String(16))
    """verify | reset | change_email"""
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    """The address the link was mailed to: the user's (verify, reset) or the new one
    (change_email), so a link for an address the user no longer has does nothing."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
