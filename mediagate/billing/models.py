"""Orders (one Stripe Checkout Session each), the events Stripe sent us, and redemption
codes with their batches and redemptions.

Credits are granted in the transaction that moves an order to `paid` (a conditional
UPDATE from `pending`) or adds a code's use (a conditional UPDATE under `max_uses`), so a
duplicate or concurrent delivery finds nothing left to move and grants nothing."""

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from mediagate.core.db import Base, UTCDateTime

BigId = BigInteger().with_variant(Integer(), "sqlite")
ORDER_STATUSES = ("pending", "paid", "expired", "refunded", "failed")


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'paid', 'expired', 'refunded', 'failed')", name="status"
        ),
        CheckConstraint("credits > 0 AND amount > 0", name="positive"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    """The buyer's email when the order was made (receipts, the operator's search)."""
    package_id: Mapped[str] = mapped_column(String(40))
    package_name: Mapped[str] = mapped_column(String(100))
    credits: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    """Price in the currency's minor unit."""
    currency: Mapped[str] = mapped_column(String(3))
    mode: Mapped[str] = mapped_column(String(8))
    """The wallet the credits go to: live, or test (sk_test_ key and the operator said so)."""
    status: Mapped[str] = mapped_column(String(16), index=True)
    stripe_session_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    checkout_url: Mapped[str | None] = mapped_column(String(2000))
    payment_intent_id: Mapped[str | None] = mapped_column(String(255), index=True)
    paid_event_id: Mapped[str | None] = mapped_column(String(255))
    """The Stripe event that settled it; None when the reconciler did."""
    grant_transfer_id: Mapped[int | None] = mapped_column(BigInteger)
    amount_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    credits_taken_back: Mapped[int] = mapped_column(BigInteger, default=0)
    credits_unrecovered: Mapped[int] = mapped_column(BigInteger, default=0)
    """Refunded credits the wallet no longer held (already spent): for the operator."""
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When it expired, failed, or was (last) refunded."""
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    """When the reconciler asks Stripe about it, while pending."""
    receipt_mailed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When its receipt was claimed for mailing (billing/receipts.py): at most one each."""


class ExternalEvent(Base):
    """Every event received from outside, stored before it is acted on."""

    __tablename__ = "external_events"
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(100))
    ref: Mapped[str | None] = mapped_column(String(255), index=True)
    """What it is about: the Checkout Session or the PaymentIntent id."""
    payload: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    outcome: Mapped[str | None] = mapped_column(String(300))


class CodeBatch(Base):
    __tablename__ = "code_batches"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    credits: Mapped[int] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(Integer)
    uses_per_code: Mapped[int] = mapped_column(Integer)
    test: Mapped[bool] = mapped_column(Boolean, default=False)
    """Test credits whoever redeems; otherwise the redeeming key's mode (live on the page)."""
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    note: Mapped[str] = mapped_column(String(200), default="")
    created_by: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RedemptionCode(Base):
    """One code: only an HMAC of it is kept."""

    __tablename__ = "redemption_codes"
    __table_args__ = (CheckConstraint("uses >= 0 AND uses <= max_uses", name="uses_in_range"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("code_batches.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(16))
    max_uses: Mapped[int] = mapped_column(Integer)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Redemption(Base):
    __tablename__ = "redemptions"
    __table_args__ = (UniqueConstraint("code_id", "account_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    code_id: Mapped[int] = mapped_column(ForeignKey("redemption_codes.id"), index=True)
    batch_id: Mapped[str] = mapped_column(String(32), index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    mode: Mapped[str] = mapped_column(String(8))
    credits: Mapped[int] = mapped_column(BigInteger)
    transfer_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
