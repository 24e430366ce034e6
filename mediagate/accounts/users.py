"""Dashboard users: email + password (argon2id, hashed by accounts/passwords.py outside
any transaction), one account each."""

import re

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mediagate.accounts import service as accounts
from mediagate.accounts.models import Account, User
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


async def mark_verified(session: AsyncSession, user_id: str, email: str) -> bool:
    """Record that the user opened a link mailed to `email`, if that is still their
    address (a link to an address they have since changed confirms nothing)."""
    moved = await session.execute(
        update(User)
        .where(User.id == user_id, User.email == email, User.email_verified_at.is_(None))
        .values(email_verified_at=utcnow())
    )
    return bool(moved.rowcount == 1)  # type: ignore[attr-defined]


async def change_email(session: AsyncSession, user_id: str, new_email: str) -> str:
    """Give the user `new_email` (confirmed: the link was mailed there); their old address.
    EmailTaken if another user has it (a concurrent twin fails at commit instead)."""
    if await session.scalar(select(User.id).where(User.email == new_email)) is not None:
        raise EmailTaken("That address belongs to another account", param="email")
    user = await session.get_one(User, user_id, with_for_update=True, populate_existing=True)
    old = user.email
    user.email = new_email
    user.email_verified_at = utcnow()
    # The account was named after the address at sign-up: it follows, if the new name is
    # free (an account made by name on the command line may have it; then it stays).
    account = await session.get_one(Account, user.account_id)
    taken = await session.scalar(select(Account.id).where(Account.name == new_email))
    if account.name == old and taken is None:
        account.name = new_email
    await session.flush()
    return old


def needs_verification(require: bool, user: User) -> bool:
    """Whether `user` must confirm their address before live keys and purchases."""
    return require and user.email_verified_at is None


UNVERIFIED = (
    "Confirm your email address first: open the link we mailed to {email}"
    " (or have it sent again below). Test keys and the sandbox work meanwhile."
)
