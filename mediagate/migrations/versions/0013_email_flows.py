"""email flows: single-use emailed tokens, verified email, low-balance alerts, receipts

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mediagate.core.db

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "email_tokens",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("created_at", mediagate.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", mediagate.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", mediagate.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_email_tokens_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_tokens")),
    )
    with op.batch_alter_table("email_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_email_tokens_user_id"), ["user_id"], unique=False)
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "email_verified_at", mediagate.core.db.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(sa.Column("low_balance_threshold", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "low_balance_alerted_at",
                mediagate.core.db.UTCDateTime(timezone=True),
                nullable=True,
            )
        )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "receipt_mailed_at", mediagate.core.db.UTCDateTime(timezone=True), nullable=True
            )
        )
    # Orders paid before receipts were mailed count as mailed: an upgrade sends no old ones.
    op.execute("UPDATE orders SET receipt_mailed_at = paid_at WHERE paid_at IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("receipt_mailed_at")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("low_balance_alerted_at")
        batch_op.drop_column("low_balance_threshold")
        batch_op.drop_column("email_verified_at")
    with op.batch_alter_table("email_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_email_tokens_user_id"))
    op.drop_table("email_tokens")
