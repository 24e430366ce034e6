"""Redemption codes: `MG-XXXXX-XXXXX-XXXXX-XXXXX-CCCC`, 100 random bits in Crockford
base32 and a 20-bit CRC32 check, so a typo is refused before any lookup; only an HMAC of
the code is stored. A use is added by one conditional UPDATE (under `max_uses`) in the
transaction that grants the credits: two redemptions at once cannot both pass it."""

import hashlib
import hmac
import secrets
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mediagate.billing.errors import CodeNotRedeemable, InvalidCode
from mediagate.billing.models import CodeBatch, Redemption, RedemptionCode
from mediagate.core.clock import isoformat, utcnow
from mediagate.core.errors import InvalidRequest
from mediagate.core.ids import new_id
from mediagate.ledger import service as ledger

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U
BODY, CHECK = 20, 4
PREFIX = "MG"
MAX_BATCH = 10_000
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})  # what people mistype


def _encode(n: int, width: int) -> str:
    digits = []
    for _ in range(width):
        n, r = divmod(n, 32)
        digits.append(ALPHABET[r])
    return "".join(reversed(digits))


def _check(body: str) -> str:
    return _encode(zlib.crc32(body.encode()) % 32**CHECK, CHECK)


def generate() -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(BODY))
    groups = [body[i : i + 5] for i in range(0, BODY, 5)]
    return "-".join([PREFIX, *groups, _check(body)])


def parse(raw: str) -> str | None:
    """The code's body if `raw` is well formed with the right check (spaces, dashes and
    case ignored; O read as 0, I and L as 1), else None."""
    text = "".join(raw.split()).replace("-", "").upper().translate(_READ_AS)
    if not text.startswith(PREFIX) or len(text) != len(PREFIX) + BODY + CHECK:
        return None
    body, check = text[len(PREFIX) : -CHECK], text[-CHECK:]
    if any(c not in ALPHABET for c in body + check):
        return None
    return body if hmac.compare_digest(_check(body), check) else None


def digest(secret: bytes, body: str) -> str:
    return hmac.new(secret, f"redeem:{body}".encode(), hashlib.sha256).hexdigest()


async def create_batch(
    session: AsyncSession,
    secret: bytes,
    *,
    credits: int,
    count: int,
    uses: int = 1,
    expires_at: datetime | None = None,
    test: bool = False,
    note: str = "",
    created_by: str,
) -> tuple[CodeBatch, list[str]]:
    """A batch of `count` codes worth `credits` each; the codes (shown once, never stored)."""
    if not 0 < credits <= 10**9:
        raise InvalidRequest("Credits per code: a whole number from 1", param="credits")
    if not 0 < count <= MAX_BATCH:
        raise InvalidRequest(f"Codes per batch: 1 to {MAX_BATCH}", param="count")
    if not 0 < uses <= 10**6:
        raise InvalidRequest("Uses per code: a whole number from 1", param="uses")
    now = utcnow()
    if expires_at is not None and expires_at <= now:
        raise InvalidRequest("The expiry must be in the future", param="expires")
    batch = CodeBatch(
        id=new_id("cbt", 12),
        credits=credits,
        count=count,
        uses_per_code=uses,
        test=test,
        expires_at=expires_at,
        note=note[:200],
        created_by=created_by,
        created_at=now,
    )
    session.add(batch)
    await session.flush()
    codes = [generate() for _ in range(count)]
    session.add_all(
        RedemptionCode(
            batch_id=batch.id,
            code_hash=digest(secret, cast(str, parse(code))),
            hint=code[-9:-5],
            max_uses=uses,
            uses=0,
            expires_at=expires_at,
            created_at=now,
        )
        for code in codes
    )
    await session.flush()
    return batch, codes


@dataclass(frozen=True)
class Redeemed:
    credits: int
    mode: ledger.Mode
    batch_id: str
    transfer_id: int


async def redeem(
    session: AsyncSession,
    secret: bytes,
    raw: str,
    *,
    account_id: str,
    key_mode: ledger.Mode | None,
) -> Redeemed:
    """Grant the code's credits to the account: to the test wallet if the batch says test,
    else to `key_mode` (live when redeemed on the dashboard)."""
    body = parse(raw)
    if body is None:
        raise InvalidCode(param="code")
    code = await session.scalar(
        select(RedemptionCode).where(RedemptionCode.code_hash == digest(secret, body))
    )
    if code is None:
        raise InvalidCode("No such code", param="code")
    now = utcnow()
    if code.expires_at is not None and code.expires_at <= now:
        raise CodeNotRedeemable(f"This code expired at {isoformat(code.expires_at)}")
    mine = await session.scalar(
        select(func.count())
        .select_from(Redemption)
        .where(Redemption.code_id == code.id, Redemption.account_id == account_id)
    )
    if mine:
        raise CodeNotRedeemable("You have already redeemed this code")
    used = await session.execute(
        update(RedemptionCode)
        .where(RedemptionCode.id == code.id, RedemptionCode.uses < RedemptionCode.max_uses)
        .values(uses=RedemptionCode.uses + 1)
    )
    if used.rowcount != 1:  # type: ignore[attr-defined]
        raise CodeNotRedeemable("This code has already been used")
    batch = await session.get_one(CodeBatch, code.batch_id)
    mode: ledger.Mode = "test" if batch.test else (key_mode or "live")
    transfer = await ledger.grant(
        session,
        account_id,
        mode,
        batch.credits,
        reason=f"Redeemed code …{code.hint} (batch {batch.id})",
    )
    session.add(
        Redemption(
            code_id=code.id,
            batch_id=batch.id,
            account_id=account_id,
            mode=mode,
            credits=batch.credits,
            transfer_id=transfer,
            created_at=now,
        )
    )
    await session.flush()  # a second redemption by this account at once fails here
    return Redeemed(batch.credits, mode, batch.id, transfer)


async def batches(session: AsyncSession, limit: int = 50) -> list[tuple[CodeBatch, int]]:
    """Recent batches with their number of redemptions."""
    used = (
        select(RedemptionCode.batch_id, func.sum(RedemptionCode.uses).label("uses"))
        .group_by(RedemptionCode.batch_id)
        .subquery()
    )
    rows = await session.execute(
        select(CodeBatch, func.coalesce(used.c.uses, 0))
        .outerjoin(used, used.c.batch_id == CodeBatch.id)
        .order_by(CodeBatch.created_at.desc())
        .limit(limit)
    )
    return [(batch, int(n)) for batch, n in rows.all()]
