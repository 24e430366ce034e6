"""Double-entry ledger in the style of TigerBeetle: accounts and immutable transfers.

A hold is a *pending* transfer from the user's wallet to revenue; it is later resolved
exactly once by a capture (posted) or a release (voided) transfer naming it in
`pending_id` (unique). Every transfer moves `amount` from one account to another, so
each sums to zero by construction. The balance columns on user wallets are a cache of
their transfers, updated in the same transaction and checked by `recompute_balance`.
"""

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from mediagate.core.db import Base, UTCDateTime

BigId = BigInteger().with_variant(Integer(), "sqlite")


class LedgerAccount(Base):
    __tablename__ = "ledger_accounts"
    __table_args__ = (
        CheckConstraint(
            "code != 'user' OR credits_posted - debits_posted - debits_pending >= 0",
            name="user_not_overdrawn",
        ),
    )

    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    """`<account id>:<mode>` for a user wallet, `@grants:<mode>` / `@revenue:<mode>` for ours."""
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    mode: Mapped[str] = mapped_column(String(8))
    code: Mapped[str] = mapped_column(String(16))
    debits_pending: Mapped[int] = mapped_column(BigInteger, default=0)
    debits_posted: Mapped[int] = mapped_column(BigInteger, default=0)
    credits_posted: Mapped[int] = mapped_column(BigInteger, default=0)


class LedgerTransfer(Base):
    __tablename__ = "ledger_transfers"
    __table_args__ = (
        CheckConstraint("amount > 0", name="positive_amount"),
        Index(
            "uq_ledger_transfers_hold_per_task",
            "task_id",
            unique=True,
            sqlite_where=text("kind = 'hold'"),
            postgresql_where=text("kind = 'hold'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    """grant | debit | hold | capture | release"""
    debit_account_id: Mapped[str] = mapped_column(ForeignKey("ledger_accounts.id"), index=True)
    credit_account_id: Mapped[str] = mapped_column(ForeignKey("ledger_accounts.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    pending_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transfers.id"), unique=True)
    task_id: Mapped[str | None] = mapped_column(String(40), index=True)
    reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
