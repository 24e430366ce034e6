"""a webhook secret per mode; ledger columns kept integers on SQLite

Each account gets its own whsec_ secret for test and for live callbacks: the existing
secret stays the live one (live receivers keep verifying), test gets a new one, and an
account that had none gets both. Each callback delivery records its task's mode.

On SQLite, BIGINT columns accept any value and integer arithmetic past 2^63-1 silently
turns into a REAL: triggers refuse any non-integer ledger amount or balance. (PostgreSQL's
bigint refuses both by itself.)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 14:50:00
"""

import base64
import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BALANCES = ("credits_posted", "debits_posted", "debits_pending")
TRIGGERS = {
    "ledger_accounts_integers_on_insert": ("INSERT", "ledger_accounts", BALANCES),
    "ledger_accounts_integers_on_update": ("UPDATE", "ledger_accounts", BALANCES),
    "ledger_transfers_integer_amount": ("INSERT", "ledger_transfers", ("amount",)),
}


def _secret() -> str:
    """As webhooks/signing.py makes them (written out: a migration must not change)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def upgrade() -> None:
    op.execute("ALTER TABLE accounts RENAME COLUMN webhook_secret TO webhook_secret_live")
    op.add_column("accounts", sa.Column("webhook_secret_test", sa.String(64), nullable=True))
    accounts = sa.table(
        "accounts",
        sa.column("id", sa.String),
        sa.column("webhook_secret_live", sa.String),
        sa.column("webhook_secret_test", sa.String),
    )
    connection = op.get_bind()
    for account_id, live in connection.execute(
        sa.select(accounts.c.id, accounts.c.webhook_secret_live)
    ).all():
        connection.execute(
            accounts.update()
            .where(accounts.c.id == account_id)
            .values(webhook_secret_live=live or _secret(), webhook_secret_test=_secret())
        )

    op.add_column(
        "callback_deliveries",
        sa.Column("mode", sa.String(8), server_default="live", nullable=False),
    )
    op.execute(
        "UPDATE callback_deliveries SET mode = (SELECT tasks.mode FROM tasks"
        " WHERE tasks.id = callback_deliveries.task_id)"
        " WHERE EXISTS (SELECT 1 FROM tasks WHERE tasks.id = callback_deliveries.task_id)"
    )

    if connection.dialect.name == "sqlite":
        for name, (event, table, columns) in TRIGGERS.items():
            wrong = " OR ".join(f"typeof(NEW.{c}) != 'integer'" for c in columns)
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {event} ON {table} WHEN {wrong}"
                " BEGIN SELECT RAISE(ABORT, 'ledger amounts are 64-bit integers'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
    with op.batch_alter_table("callback_deliveries") as batch:
        batch.drop_column("mode")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("webhook_secret_test")
    op.execute("ALTER TABLE accounts RENAME COLUMN webhook_secret_live TO webhook_secret")
