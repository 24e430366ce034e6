"""API keys: `aio_live_` / `aio_test_` + 30 random base62 characters + 6-character CRC32.

The checksum lets us reject typos and garbage without touching the database; only an
HMAC-SHA256 (server secret) of the whole key is stored, so a leaked table leaks no keys.
"""

import hashlib
import hmac
import re
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mediagate.core.clock import utcnow
from mediagate.core.errors import AuthenticationFailed, InvalidRequest, NotFound
from mediagate.core.ids import base62, new_id, random_base62
from mediagate.keys.limits import KeyLimits, from_columns
from mediagate.keys.models import ApiKey
from mediagate.ledger.service import Mode

BODY_LENGTH = 30
CHECKSUM_LENGTH = 6
KEY_RE = re.compile(
    rf"^aio_(live|test)_([0-9A-Za-z]{{{BODY_LENGTH}}})([0-9A-Za-z]{{{CHECKSUM_LENGTH}}})$"
)


@dataclass(frozen=True)
class AuthedKey:
    """The caller: which key, which account, live or test."""

    id: str
    account_id: str
    mode: Mode
    limits: KeyLimits | None = None
    """Models, client addresses and spending caps it is held to (None: no limits)."""


def checksum(prefix_and_body: str) -> str:
    return base62(zlib.crc32(prefix_and_body.encode()), CHECKSUM_LENGTH)


def generate_secret(mode: str) -> str:
    head = f"aio_{mode}_{random_base62(BODY_LENGTH)}"
    return head + checksum(head)


def parse_secret(raw: str) -> str | None:
    """The key's mode if `raw` is well formed with a valid checksum, else None."""
    match = KEY_RE.match(raw)
    if match is None:
        return None
    head = raw[:-CHECKSUM_LENGTH]
    if not hmac.compare_digest(checksum(head), match.group(3)):
        return None
    return match.group(1)


def hash_secret(secret: bytes, raw: str) -> str:
    return hmac.new(secret, raw.encode(), hashlib.sha256).hexdigest()


def hint(raw: str) -> str:
    return f"{raw[:13]}…{raw[-4:]}"


async def create_key(
    session: AsyncSession,
    hmac_secret: bytes,
    *,
    account_id: str,
    mode: str,
    name: str = "",
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """A new key and its plaintext, which is shown once and never stored."""
    if mode not in ("live", "test"):
        raise ValueError(f"mode must be live or test, not {mode!r}")
    raw = generate_secret(mode)
    key = ApiKey(
        id=new_id("key", 16),
        account_id=account_id,
        mode=mode,
        name=name,
        key_hash=hash_secret(hmac_secret, raw),
        hint=hint(raw),
        created_at=utcnow(),
        expires_at=expires_at,
    )
    session.add(key)
    await session.flush()
    return key, raw


@dataclass(frozen=True)
class CachedKey:
    key: AuthedKey
    expires_at: datetime | None


async def authenticate(session: AsyncSession, hmac_secret: bytes, raw: str) -> AuthedKey:
    """The key behind `raw`, or AuthenticationFailed (one indexed lookup at most)."""
    return (await lookup(session, hash_secret(hmac_secret, raw) if parse_secret(raw) else "")).key


async def lookup(session: AsyncSession, key_hash: str) -> CachedKey:
    """The usable key with this hash, or AuthenticationFailed."""
    if not key_hash:
        raise AuthenticationFailed()
    row = (
        await session.execute(
            select(
                ApiKey.id,
                ApiKey.account_id,
                ApiKey.mode,
                ApiKey.revoked_at,
                ApiKey.expires_at,
                ApiKey.allowed_models,
                ApiKey.allowed_networks,
                ApiKey.cap_day,
                ApiKey.cap_month,
                ApiKey.cap_total,
            ).where(ApiKey.key_hash == key_hash)
        )
    ).one_or_none()
    if row is None or row.revoked_at is not None:
        raise AuthenticationFailed()
    if row.expires_at is not None and row.expires_at <= utcnow():
        raise AuthenticationFailed()
    limits = from_columns(
        row.allowed_models, row.allowed_networks, row.cap_day, row.cap_month, row.cap_total
    )
    key = AuthedKey(id=row.id, account_id=row.account_id, mode=cast(Mode, row.mode), limits=limits)
    return CachedKey(key=key, expires_at=row.expires_at)


async def touch(session: AsyncSession, key_id: str, *, every_s: int = 60) -> None:
    """Record use, at most once a minute per key (keeps the hot path write-light)."""
    now = utcnow()
    await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id)
        .where(
            or_(
                ApiKey.last_used_at.is_(None),
                ApiKey.last_used_at < now - timedelta(seconds=every_s),
            )
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )


async def list_keys(session: AsyncSession, account_id: str | None = None) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.created_at)
    if account_id is not None:
        query = query.where(ApiKey.account_id == account_id)
    return list(await session.scalars(query))


async def revoke(session: AsyncSession, key_id: str, *, account_id: str | None = None) -> ApiKey:
    """Revoke a key (only one of `account_id`'s, when given)."""
    key = await session.get(ApiKey, key_id)
    if key is None or (account_id is not None and key.account_id != account_id):
        raise NotFound(f"No key {key_id!r}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await session.flush()
    return key


async def rotate(
    session: AsyncSession, hmac_secret: bytes, key_id: str, *, account_id: str, grace_s: int
) -> tuple[ApiKey, str]:
    """A new key with the old one's name and mode; the old one keeps working for
    `grace_s` seconds (0: stops now), so clients can switch without downtime."""
    old = await session.get(ApiKey, key_id)
    if old is None or old.account_id != account_id:
        raise NotFound(f"No key {key_id!r}")
    if old.revoked_at is not None:
        raise InvalidRequest("A revoked key cannot be rotated", param="key_id")
    new, raw = await create_key(
        session, hmac_secret, account_id=account_id, mode=old.mode, name=old.name
    )
    ends = utcnow() + timedelta(seconds=max(0, grace_s))
    if old.expires_at is None or old.expires_at > ends:
        old.expires_at = ends
    await session.flush()
    return new, raw


async def set_limits(
    session: AsyncSession, key_id: str, limits: KeyLimits, *, account_id: str | None = None
) -> ApiKey:
    """Replace a key's limits (only one of `account_id`'s, when given). Other processes
    see them once their key cache entry expires (MEDIAGATE_KEY_CACHE_S)."""
    key = await session.get(ApiKey, key_id)
    if key is None or (account_id is not None and key.account_id != account_id):
        raise NotFound(f"No key {key_id!r}")
    for column, value in limits.as_columns().items():
        setattr(key, column, value)
    await session.flush()
    return key


def limits_of(key: ApiKey) -> KeyLimits | None:
    return from_columns(
        key.allowed_models, key.allowed_networks, key.cap_day, key.cap_month, key.cap_total
    )
