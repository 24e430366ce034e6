"""GET /api/v1/account: who am I, what can I spend, how to verify my callbacks."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from mediagate.accounts.models import Account
from mediagate.accounts.schemas import AccountData
from mediagate.core.http import success
from mediagate.core.schemas import BEARER, answers
from mediagate.core.state import core_state
from mediagate.keys.deps import CurrentKey
from mediagate.ledger import service as ledger
from mediagate.webhooks.service import account_secret, mode_secret

router = APIRouter(prefix="/api/v1", tags=["account"])


@router.get(
    "/account",
    summary="Balance of the key's mode, key info, callback secret",
    responses=answers(AccountData, 401, 429),
    openapi_extra=BEARER,
)
async def get_account(request: Request, caller: CurrentKey) -> JSONResponse:
    db = core_state(request).db
    async with db.read() as session:
        account = await session.get_one(Account, caller.account_id)
        balance = await ledger.balance(session, caller.account_id, caller.mode)
    secret = mode_secret(account, caller.mode)  # the secret of this key's mode only
    if secret is None:
        async with db.write() as session:
            secret = await account_secret(session, caller.account_id, caller.mode)
    return success(
        {
            "account": {"id": account.id, "name": account.name},
            "key": {"id": caller.id, "mode": caller.mode},
            "credits": {
                "available": balance.available,
                "held": balance.held,
                "posted": balance.posted,
            },
            "webhook_secret": secret,
        }
    )
