"""Dashboard users: email + password (argon2id, hashed by accounts/passwords.py outside
any transaction), one account each."""

import re

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mediagate.accounts import service as accounts
from mediagate.accounts.models import User
from mediagate.core.clock import utcnow
from mediagate.core.errors import InvalidRequest
from mediagate.core.ids import new_id

EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s.]{2,}$")


class EmailTaken(InvalidRequest):
    """An account with this email exists; sign in"""


def normal_email(email: str) -> str:
    email = email.strip().lower()
    if not EMAIL_RE.match(email):
        raise InvalidRequest("Enter a valid email address", param="email")
    return email


async def by_email(session: AsyncSession, email: str) -> User | None:
    """The user signing in with `email`; never a deleted one (whose email was moved aside,
    accounts/deletion.py: not even by the placeholder address it was given)."""
    return await session.scalar(
        select(User).where(User.email == email.strip().lower(), User.deleted_at.is_(None))
    )


async def create_user(
    session: AsyncSession, email: str, password_hash: str, *, admin: bool = False
) -> User:
    """A new user and its account; EmailTaken if the email has one already."""
    email = normal_email(email)
    if await session.scalar(select(User.id).where(User.email == email)) is not None:
        raise EmailTaken(param="email")
    account, _ = await accounts.get_or_create(session, email)
    user = User(
        id=new_id("usr", 16),
        email=email,
        password_hash=password_hash,
        account_id=account.id,
        is_admin=admin,
        created_at=utcnow(),
    )
    session.add(user)
    await session.flush()
    return user


async def set_password_hash(session: AsyncSession, user_id: str, password_hash: str) -> None:
    user = await session.get_one(User, user_id)
    user.password_hash = password_hash
