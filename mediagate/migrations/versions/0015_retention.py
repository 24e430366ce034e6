"""retention: tasks.files_expired_at and uploads.expired_at (with the sweepers' claims),
their scan indexes, and expired_files (the keys answered 410 Gone)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from mediagate.core.db import UTCDateTime

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TASKS_KEPT = "files_expired_at IS NULL AND completed_at IS NOT NULL"
UPLOADS_KEPT = "expired_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch_op:
        batch_op.add_column(
            sa.Column("files_expired_at", UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("sweep_until", UTCDateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_tasks_retention",
        "tasks",
        ["mode", "completed_at"],
        sqlite_where=sa.text(TASKS_KEPT),
        postgresql_where=sa.text(TASKS_KEPT),
    )
    with op.batch_alter_table("uploads") as batch_op:
        batch_op.add_column(sa.Column("expired_at", UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("sweep_until", UTCDateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_uploads_retention",
        "uploads",
        ["created_at"],
        sqlite_where=sa.text(UPLOADS_KEPT),
        postgresql_where=sa.text(UPLOADS_KEPT),
    )
    op.create_table(
        "expired_files",
        sa.Column("key", sa.String(length=140), nullable=False),
        sa.Column("expired_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_expired_files")),
    )


def downgrade() -> None:
    op.drop_table("expired_files")
    op.drop_index("ix_uploads_retention", table_name="uploads")
    with op.batch_alter_table("uploads") as batch_op:
        batch_op.drop_column("sweep_until")
        batch_op.drop_column("expired_at")
    op.drop_index("ix_tasks_retention", table_name="tasks")
    with op.batch_alter_table("tasks") as batch_op:
        batch_op.drop_column("sweep_until")
        batch_op.drop_column("files_expired_at")
