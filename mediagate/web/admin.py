"""The operator's page: accounts and balances, grant or take back credits with a reason
(recorded in the ledger), provider status, recent failures."""

from typing import Annotated, cast

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import select

from mediagate.accounts.models import Account, User
from mediagate.core.errors import MediagateError, NotFound
from mediagate.core.state import core_state
from mediagate.ledger import service as ledger
from mediagate.ledger.service import Mode
from mediagate.providers.configured import ALL_LIVE, configured_names
from mediagate.providers.health import provider_status
from mediagate.providers.sandbox import SandboxProvider
from mediagate.tasks.models import Task
from mediagate.web.render import page, redirect
from mediagate.web.security import admin, check_csrf, form
from mediagate.web.sessions import Viewer

router = APIRouter(prefix="/admin", include_in_schema=False)
SANDBOX = SandboxProvider.name
Admin = Annotated[Viewer, Depends(admin)]


async def _admin_page(request: Request, who: Viewer, *, error: str | None = None) -> Response:
    settings = core_state(request).settings
    async with core_state(request).db.read() as session:
        rows = (
            await session.execute(
                select(Account, User.email)
                .outerjoin(User, User.account_id == Account.id)
                .order_by(Account.created_at)
            )
        ).all()
        accounts = [
            {
                "account": account,
                "email": email,
                "live": await ledger.balance(session, account.id, "live"),
                "test": await ledger.balance(session, account.id, "test"),
            }
            for account, email in rows
        ]
        # The sandbox serves every test key and needs no credentials: always there.
        configured = {SANDBOX, *configured_names(settings)}
        providers = [
            (name, name in configured, await provider_status(session, name))
            for name in (SANDBOX, *ALL_LIVE)
        ]
        failures = list(
            await session.scalars(
                select(Task)
                .where(Task.status == "failed")
                .order_by(Task.completed_at.desc())
                .limit(20)
            )
        )
    return page(
        request,
        "admin.html",
        who,
        400 if error else 200,
        accounts=accounts,
        providers=providers,
        failures=failures,
        error=error,
        max_amount=ledger.MAX_AMOUNT,
    )


@router.get("")
async def admin_page(request: Request, who: Admin) -> Response:
    return await _admin_page(request, who)


@router.post("/credits")
async def change_credits(request: Request, who: Admin) -> Response:
    fields = await form(request)
    check_csrf(request, who.csrf_token, fields)
    mode = cast(Mode, fields.get("mode", ""))
    reason = fields.get("reason", "").strip()
    if mode not in ("live", "test") or not reason:
        return await _admin_page(request, who, error="Choose live or test, and give a reason")
    note = f"{reason} (by {who.user.email})"
    try:
        amount = ledger.parse_amount(fields.get("amount", ""))
        async with core_state(request).db.write() as session:
            account = await session.get(Account, fields.get("account_id", ""))
            if account is None:
                raise NotFound("No such account")
            if fields.get("action") == "revoke":
                await ledger.debit(session, account.id, mode, amount, reason=note)
            else:
                await ledger.grant(session, account.id, mode, amount, reason=note)
    except MediagateError as exc:  # a bad amount, no such account, or not that many to take
        return await _admin_page(request, who, error=exc.message)
    return redirect("/admin")
