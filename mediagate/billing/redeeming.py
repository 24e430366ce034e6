"""One redemption attempt, as both doors (the API and the Top up page) make it: rate
limited per account and per address before anything is looked at, one unit of work."""

from fastapi import Request
from sqlalchemy.exc import IntegrityError

from mediagate.billing import codes
from mediagate.billing.errors import CodeNotRedeemable
from mediagate.billing.state import billing_state
from mediagate.core.state import core_state
from mediagate.ledger import service as ledger


async def redeem(
    request: Request, raw: str, *, account_id: str, key_mode: ledger.Mode | None
) -> tuple[codes.Redeemed, ledger.Balance]:
    limiter = billing_state(request).redeem_limiter
    await limiter.check(f"redeem-account:{account_id}")
    await limiter.check(f"redeem-ip:{request.client.host if request.client else 'unknown'}")
    core = core_state(request)
    try:
        async with core.db.write() as session:
            done = await codes.redeem(
                session, core.settings.hmac_secret, raw, account_id=account_id, key_mode=key_mode
            )
            balance = await ledger.balance(session, account_id, done.mode)
    except IntegrityError:  # the same account redeeming the same code twice at once
        raise CodeNotRedeemable("You have already redeemed this code") from None
    return done, balance
