"""Dashboard users: email + password (argon2id), one account each."""

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mediagate.accounts import service as accounts
from mediagate.accounts.models import User
from mediagate.core.clock import utcnow
from mediagate.core.errors import InvalidRequest
from mediagate.core.ids import new_id

EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s.]{2,}$")
MIN_PASSWORD = 10
_hasher = PasswordHasher()
# Verified against when the email is unknown, so both answers take the same time.
_DUMMY = _hasher.hash("not a password of anyone's")


def normal_email(email: str) -> str:
    email = email.strip().lower()
    if not EMAIL_RE.match(email):
        raise InvalidRequest("Enter a valid email address", param="email")
    return email


async def create_user(
    session: AsyncSession, email: str, password: str, *, admin: bool = False
) -> User:
    email = normal_email(email)
    if len(password) < MIN_PASSWORD:
        raise InvalidRequest(f"Passwords are at least {MIN_PASSWORD} characters", param="password")
    if await session.scalar(select(User.id).where(User.email == email)) is not None:
        raise InvalidRequest("An account with this email exists; sign in", param="email")
    account, _ = await accounts.get_or_create(session, email)
    user = User(
        id=new_id("usr", 16),
        email=email,
        password_hash=_hasher.hash(password),
        account_id=account.id,
        is_admin=admin,
        created_at=utcnow(),
    )
    session.add(user)
    await session.flush()
    return user


async def verify(session: AsyncSession, email: str, password: str) -> User | None:
    """The user with this email and password, or None (same work either way)."""
    user = await session.scalar(select(User).where(User.email == email.strip().lower()))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user
