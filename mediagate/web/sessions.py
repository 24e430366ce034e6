"""Browser sessions: a new random id at every sign-in (no fixation), deleted at sign-out,
expiring after SESSION_DAYS; each carries its own CSRF token, the browser and address it
began from, and when it was last seen (written at most once a minute, so a page view
costs no write). A session may be pending: the password was right, the two-factor code is
still due (web/two_factor.py); a pending session signs in nothing."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mediagate.accounts.models import User
from mediagate.core.clock import utcnow
from mediagate.web.models import WebSession

SESSION_DAYS = 14
SEEN_EVERY = timedelta(minutes=1)
USER_AGENT_MAX = 300


@dataclass(frozen=True)
class Viewer:
    user: User
    csrf_token: str
    session_id: str = ""
    """The session's id (the digest of its cookie), to tell "this session" in lists."""
    last_seen_at: datetime | None = None


@dataclass(frozen=True)
class Client:
    """Where a sign-in comes from, as the session list shows it."""

    user_agent: str | None
    address: str | None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def start(
    session: AsyncSession,
    user_id: str,
    client: Client | None = None,
    *,
    pending_for: timedelta | None = None,
) -> str:
    """A new session for `user_id` (pending the second factor for `pending_for`, when
    given); the token for the cookie."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        WebSession(
            id=digest(token),
            user_id=user_id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            expires_at=now + (pending_for or timedelta(days=SESSION_DAYS)),
            user_agent=client.user_agent[:USER_AGENT_MAX] if client and client.user_agent else None,
            address=client.address if client else None,
            pending_2fa=pending_for is not None,
            code_attempts=0,
        )
    )
    await session.flush()
    return token


def _live(token: str, *, pending: bool) -> list[object]:
    return [
        WebSession.id == digest(token),
        WebSession.expires_at > utcnow(),
        WebSession.pending_2fa.is_(pending),
        User.deleted_at.is_(None),
    ]


async def lookup(session: AsyncSession, token: str) -> Viewer | None:
    row = (
        await session.execute(
            select(WebSession, User)
            .join(User, User.id == WebSession.user_id)
            .where(*_live(token, pending=False))  # type: ignore[arg-type]
        )
    ).one_or_none()
    if row is None:
        return None
    web_session, user = row
    return Viewer(
        user=user,
        csrf_token=web_session.csrf_token,
        session_id=web_session.id,
        last_seen_at=web_session.last_seen_at,
    )


def due_for_touch(viewer: Viewer, now: datetime) -> bool:
    return viewer.last_seen_at is None or now - viewer.last_seen_at >= SEEN_EVERY


async def touch(session: AsyncSession, session_id: str, now: datetime) -> None:
    """Record a request; a no-op if another request did within the minute."""
    await session.execute(
        update(WebSession)
        .where(
            WebSession.id == session_id,
            or_(WebSession.last_seen_at.is_(None), WebSession.last_seen_at < now - SEEN_EVERY),
        )
        .values(last_seen_at=now)
        .execution_options(synchronize_session=False)
    )


async def pending(session: AsyncSession, token: str) -> tuple[WebSession, User] | None:
    """The half-done sign-in behind `token`, if it is still open."""
    row = (
        await session.execute(
            select(WebSession, User)
            .join(User, User.id == WebSession.user_id)
            .where(*_live(token, pending=True))  # type: ignore[arg-type]
        )
    ).one_or_none()
    return None if row is None else (row[0], row[1])


async def take_attempt(session: AsyncSession, session_id: str, limit: int) -> bool:
    """Count one code tried on a pending session; False (and the session ended) once it
    has had `limit`. One conditional UPDATE, so concurrent tries cannot overrun it."""
    taken = await session.execute(
        update(WebSession)
        .where(
            WebSession.id == session_id,
            WebSession.pending_2fa.is_(True),
            WebSession.code_attempts < limit,
        )
        .values(code_attempts=WebSession.code_attempts + 1)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount == 1:  # type: ignore[attr-defined]
        return True
    await session.execute(delete(WebSession).where(WebSession.id == session_id))
    return False


async def complete(session: AsyncSession, pending_id: str, user_id: str, client: Client) -> str:
    """The pending session ended and a full one begun (a new id, as at any sign-in); the
    new token, or "" if the pending one was already used or ended."""
    ended = await session.execute(
        delete(WebSession).where(WebSession.id == pending_id, WebSession.pending_2fa.is_(True))
    )
    if ended.rowcount != 1:  # type: ignore[attr-defined]
        return ""
    return await start(session, user_id, client)


async def signed_in_list(session: AsyncSession, user_id: str) -> list[WebSession]:
    """The user's signed-in sessions, the most recently seen first."""
    rows = await session.scalars(
        select(WebSession)
        .where(
            WebSession.user_id == user_id,
            WebSession.pending_2fa.is_(False),
            WebSession.expires_at > utcnow(),
        )
        .order_by(WebSession.last_seen_at.desc(), WebSession.created_at.desc())
    )
    return list(rows)


async def end(session: AsyncSession, token: str) -> None:
    await session.execute(delete(WebSession).where(WebSession.id == digest(token)))


async def end_one(session: AsyncSession, user_id: str, session_id: str) -> bool:
    """End one of `user_id`'s sessions; False if it is not theirs (or already over)."""
    ended = await session.execute(
        delete(WebSession).where(WebSession.id == session_id, WebSession.user_id == user_id)
    )
    return bool(ended.rowcount)  # type: ignore[attr-defined]


async def end_others(session: AsyncSession, user_id: str, keep_id: str) -> int:
    """End every session of `user_id` but `keep_id` (pending ones too); how many."""
    ended = await session.execute(
        delete(WebSession).where(WebSession.user_id == user_id, WebSession.id != keep_id)
    )
    return int(ended.rowcount)  # type: ignore[attr-defined]


async def end_all(session: AsyncSession, user_id: str) -> int:
    """Sign the user out everywhere (a password reset, a deleted account); how many."""
    ended = await session.execute(delete(WebSession).where(WebSession.user_id == user_id))
    return int(ended.rowcount)  # type: ignore[attr-defined]
