"""Accounts: get or create by name."""

import re

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mediagate.accounts.models import Account
from mediagate.core.clock import utcnow
from mediagate.core.errors import InvalidRequest, NotFound
from mediagate.core.ids import new_id
from mediagate.ledger import service as ledger
from mediagate.webhooks import signing

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,199}$")


async def get_by_name(session: AsyncSession, name: str) -> Account:
    account = await session.scalar(select(Account).where(Account.name == name))
    if account is None:
        raise NotFound(f"No account named {name!r}")
    return account


async def get_or_create(session: AsyncSession, name: str) -> tuple[Account, bool]:
    """The account named `name`, created with empty wallets if missing; True if created."""
    account = await session.scalar(select(Account).where(Account.name == name))
    if account is not None:
        return account, False
    if not NAME_RE.match(name):
        raise InvalidRequest(
            "Account names are 1-200 letters, digits or ._@+- characters", param="account"
        )
    account = Account(
        id=new_id("acc", 16),
        name=name,
        created_at=utcnow(),
        webhook_secret_live=signing.new_secret(),
        webhook_secret_test=signing.new_secret(),
    )
    session.add(account)
    await session.flush()
    await ledger.open_wallets(session, account.id)
    return account, True


async def count_accounts(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Account)) or 0)


async def names_by_id(session: AsyncSession, account_ids: set[str]) -> dict[str, str]:
    """Each account's name, by id (for listings that show whose a row is)."""
    if not account_ids:
        return {}
    rows = await session.execute(
        select(Account.id, Account.name).where(Account.id.in_(account_ids))
    )
    return {account_id: name for account_id, name in rows}
