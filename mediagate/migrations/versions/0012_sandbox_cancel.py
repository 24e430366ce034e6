"""sandbox_jobs.cancelled_at: the sandbox can stop a job it has not finished, so test keys
exercise a cancel after the provider has accepted the task

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from mediagate.core.db import UTCDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "sandbox_jobs", sa.Column("cancelled_at", UTCDateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("sandbox_jobs", "cancelled_at")
