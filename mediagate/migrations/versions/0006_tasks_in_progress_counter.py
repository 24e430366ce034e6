"""a counter of each account's tasks in progress

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 10:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "accounts",
        sa.Column("tasks_in_progress", sa.Integer(), server_default="0", nullable=False),
    )
    op.execute(
        "UPDATE accounts SET tasks_in_progress = (SELECT count(*) FROM tasks"
        " WHERE tasks.account_id = accounts.id AND tasks.status = 'in_progress')"
    )


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("tasks_in_progress")
