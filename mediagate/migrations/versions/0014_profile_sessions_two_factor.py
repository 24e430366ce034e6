"""profile: display names, session details, TOTP two-factor, account deletion

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mediagate.core.db

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = mediagate.core.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("display_name", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("totp_secret", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("totp_enabled_at", WHEN, nullable=True))
        batch.add_column(sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("deleted_at", WHEN, nullable=True))
        batch.add_column(sa.Column("deleted_email", sa.String(length=254), nullable=True))
        batch.add_column(sa.Column("purged_at", WHEN, nullable=True))
        batch.create_index(batch.f("ix_users_deleted_at"), ["deleted_at"], unique=False)
    with op.batch_alter_table("web_sessions") as batch:
        batch.add_column(sa.Column("last_seen_at", WHEN, nullable=True))
        batch.add_column(sa.Column("user_agent", sa.String(length=300), nullable=True))
        batch.add_column(sa.Column("address", sa.String(length=64), nullable=True))
        batch.add_column(
            sa.Column("pending_2fa", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(
            sa.Column("code_attempts", sa.Integer(), server_default="0", nullable=False)
        )
    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("used_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_recovery_codes_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_recovery_codes_code_hash")),
    )
    with op.batch_alter_table("recovery_codes") as batch:
        batch.create_index(batch.f("ix_recovery_codes_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_table("recovery_codes")
    with op.batch_alter_table("web_sessions") as batch:
        for column in ("code_attempts", "pending_2fa", "address", "user_agent", "last_seen_at"):
            batch.drop_column(column)
    with op.batch_alter_table("users") as batch:
        batch.drop_index(batch.f("ix_users_deleted_at"))
        for column in (
            "purged_at",
            "deleted_email",
            "deleted_at",
            "totp_last_step",
            "totp_enabled_at",
            "totp_secret",
            "display_name",
        ):
            batch.drop_column(column)
