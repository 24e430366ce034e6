"""A user's two-factor state: enrolment (a secret kept sealed, in use once a code from it
is confirmed), the codes that prove it at sign-in, recovery codes, and turning it off."""

from datetime import datetime

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mediagate.accounts import totp
from mediagate.accounts.models import RecoveryCode, User
from mediagate.core.errors import InvalidRequest

WRONG_CODE = "That code is not right (or was used already); try the next one"


def enabled(user: User) -> bool:
    return user.totp_enabled_at is not None and user.totp_secret is not None


async def begin(session: AsyncSession, user_id: str, box: totp.SecretBox) -> str:
    """A new secret waiting for its first code (replacing one not confirmed yet); the
    secret, to show. Refused while two-factor is on (turn it off first)."""
    user = await session.get_one(User, user_id)
    if enabled(user):
        raise InvalidRequest("Two-factor sign-in is on already", param="code")
    secret = totp.new_secret()
    user.totp_secret = box.seal(secret)
    user.totp_last_step = None
    await session.flush()
    return secret


def pending_secret(user: User, box: totp.SecretBox) -> str | None:
    """The secret being enrolled (not confirmed yet), if any."""
    if user.totp_secret is None or user.totp_enabled_at is not None:
        return None
    return box.open(user.totp_secret)


async def confirm(
    session: AsyncSession, user_id: str, code: str, box: totp.SecretBox, now: datetime
) -> list[str]:
    """Turn two-factor on with the first code from the new secret; the recovery codes,
    to show this once (only their HMACs are kept)."""
    user = await session.get_one(User, user_id)
    secret = pending_secret(user, box)
    if secret is None:
        raise InvalidRequest("Start two-factor set-up first", param="code")
    if not await _take_totp(session, user, secret, code, now):
        raise InvalidRequest(WRONG_CODE, param="code")
    user.totp_enabled_at = now
    return await new_recovery_codes(session, user_id, box, now)


async def new_recovery_codes(
    session: AsyncSession, user_id: str, box: totp.SecretBox, now: datetime
) -> list[str]:
    """A fresh set of recovery codes, replacing every earlier one (used or not)."""
    codes = totp.new_recovery_codes()
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    session.add_all(
        RecoveryCode(user_id=user_id, code_hash=box.recovery_hash(c), created_at=now) for c in codes
    )
    await session.flush()
    return codes


async def verify(
    session: AsyncSession, user: User, code: str, box: totp.SecretBox, now: datetime
) -> str | None:
    """Whether `code` proves the second factor: "totp" or "recovery" (that code is then
    spent), or None. Each code is taken at most once, also by concurrent requests."""
    if not enabled(user):
        return None
    assert user.totp_secret is not None
    secret = box.open(user.totp_secret)
    if secret is not None and await _take_totp(session, user, secret, code, now):
        return "totp"
    if totp.looks_like_recovery(code) and await _spend_recovery(session, user.id, code, box, now):
        return "recovery"
    return None


async def disable(session: AsyncSession, user_id: str) -> None:
    await session.execute(
        update(User)
        .where(User.id == user_id)
        .values(totp_secret=None, totp_enabled_at=None, totp_last_step=None)
        .execution_options(synchronize_session=False)
    )
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))


async def recovery_left(session: AsyncSession, user_id: str) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(RecoveryCode)
        .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
    )
    return int(count or 0)


async def _take_totp(
    session: AsyncSession, user: User, secret: str, code: str, now: datetime
) -> bool:
    """Accept the code for its time step only if that step is later than the last one
    accepted: one conditional UPDATE, so a replay (or a concurrent twin) is refused."""
    step = totp.matching_step(secret, code, now)
    if step is None:
        return False
    taken = await session.execute(
        update(User)
        .where(User.id == user.id, or_(User.totp_last_step.is_(None), User.totp_last_step < step))
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return False
    user.totp_last_step = step
    return True


async def _spend_recovery(
    session: AsyncSession, user_id: str, code: str, box: totp.SecretBox, now: datetime
) -> bool:
    spent = await session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user_id,
            RecoveryCode.code_hash == box.recovery_hash(code),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return spent.rowcount == 1  # type: ignore[attr-defined]
