"""per-key limits: allowed models and networks, spending caps and the spend they count

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 07:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("allowed_models", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("allowed_networks", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("cap_day", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("cap_month", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("cap_total", sa.Integer(), nullable=True))
    op.create_table(
        "key_spend",
        sa.Column("key_id", sa.String(length=32), sa.ForeignKey("api_keys.id"), nullable=False),
        sa.Column("period", sa.String(length=20), nullable=False),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key_id", "period"),
    )


def downgrade() -> None:
    op.drop_table("key_spend")
    with op.batch_alter_table("api_keys") as batch:
        for column in ("cap_total", "cap_month", "cap_day", "allowed_networks", "allowed_models"):
            batch.drop_column(column)
