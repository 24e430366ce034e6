"""Browser sessions: a new random id at every sign-in (no fixation), deleted at sign-out,
expiring after SESSION_DAYS; each carries its own CSRF token."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from mediagate.accounts.models import User
from mediagate.core.clock import utcnow
from mediagate.web.models import WebSession

SESSION_DAYS = 14


@dataclass(frozen=True)
class Viewer:
    user: User
    csrf_token: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def start(session: AsyncSession, user_id: str) -> str:
    """A new session for `user_id`; the token for the cookie."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        WebSession(
            id=_digest(token),
            user_id=user_id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + timedelta(days=SESSION_DAYS),
        )
    )
    await session.flush()
    return token


async def lookup(session: AsyncSession, token: str) -> Viewer | None:
    row = (
        await session.execute(
            select(WebSession, User)
            .join(User, User.id == WebSession.user_id)
            .where(WebSession.id == _digest(token), WebSession.expires_at > utcnow())
        )
    ).one_or_none()
    if row is None:
        return None
    web_session, user = row
    return Viewer(user=user, csrf_token=web_session.csrf_token)


async def end(session: AsyncSession, token: str) -> None:
    await session.execute(delete(WebSession).where(WebSession.id == _digest(token)))


async def end_all(session: AsyncSession, user_id: str) -> int:
    """Sign the user out everywhere (a password reset); how many sessions ended."""
    ended = await session.execute(delete(WebSession).where(WebSession.user_id == user_id))
    return int(ended.rowcount)  # type: ignore[attr-defined]
