"""tasks.videos: a video task's stored results (video and poster keys, size, duration)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 07:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("videos", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("tasks", "videos")
