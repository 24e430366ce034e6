"""the task list's keyset index: (account_id, created_at, id) replaces (account_id, created_at)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 15:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The new index has the old one as its prefix, so nothing that used it loses out.
    op.create_index("ix_tasks_account_created_id", "tasks", ["account_id", "created_at", "id"])
    op.drop_index("ix_tasks_account_created", table_name="tasks")


def downgrade() -> None:
    op.create_index("ix_tasks_account_created", "tasks", ["account_id", "created_at"])
    op.drop_index("ix_tasks_account_created_id", table_name="tasks")
