"""Single-use links mailed to users: confirm an address, reset a password, confirm a new
address. The link carries 32 random bytes; only their SHA-256 is stored. A token is spent
by one conditional UPDATE (unused and unexpired), so two clicks at once, or two servers
answering them, succeed once. Services never commit; each runs in the caller's unit."""

import hashlib
import secrets
from datetime import timedelta
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mediagate.accounts.models import EmailToken
from mediagate.core.clock import utcnow

Purpose = Literal["verify", "reset", "change_email"]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue(
    session: AsyncSession, user_id: str, purpose: Purpose, email: str, *, ttl_s: int
) -> str:
    """A new token mailed to `email`; the raw token, for the link. The user's earlier
    unused tokens of the same purpose stop working: the newest mail is the one to open."""
    now = utcnow()
    await session.execute(
        update(EmailToken)
        .where(
            EmailToken.user_id == user_id,
            EmailToken.purpose == purpose,
            EmailToken.used_at.is_(None),
        )
        .values(expires_at=now)
    )
    token = secrets.token_urlsafe(32)
    session.add(
        EmailToken(
            id=_digest(token),
            purpose=purpose,
            user_id=user_id,
            email=email,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_s),
        )
    )
    await session.flush()
    return token


async def peek(session: AsyncSession, token: str, purpose: Purpose) -> EmailToken | None:
    """The token if it would still work now (to show its page); does not spend it."""
    return await session.scalar(
        select(EmailToken).where(
            EmailToken.id == _digest(token),
            EmailToken.purpose == purpose,
            EmailToken.used_at.is_(None),
            EmailToken.expires_at > utcnow(),
        )
    )


async def spend(session: AsyncSession, token: str, purpose: Purpose) -> EmailToken | None:
    """Use the token: it is marked used by this call, or None (unknown, used, expired,
    or another purpose's). Whoever's UPDATE matched first wins; the others get None."""
    digest = _digest(token)
    moved = await session.execute(
        update(EmailToken)
        .where(
            EmailToken.id == digest,
            EmailToken.purpose == purpose,
            EmailToken.used_at.is_(None),
            EmailToken.expires_at > utcnow(),
        )
        .values(used_at=utcnow())
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return await session.get_one(EmailToken, digest, populate_existing=True)
