"""/profile/email: the user's address (confirmed or not, the confirmation sent again),
changing it, and the low-balance alert. A new address is confirmed by a link mailed to
it, and only that link changes it; the old address is then told. An address another
account has is refused, when asked and again when the link is used."""

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from mediagate.accounts import email_tokens, users
from mediagate.accounts.models import User
from mediagate.core.errors import InvalidRequest, RateLimited
from mediagate.core.state import core_state
from mediagate.ledger import service as ledger
from mediagate.mail.links import link
from mediagate.mail.messages import compose
from mediagate.mail.outbox import outbox_of
from mediagate.web.auth import auth_page, limits_of, passwords_of
from mediagate.web.render import page, redirect
from mediagate.web.security import CSRF_COOKIE, MaybeViewer, SignedIn, check_csrf, form
from mediagate.web.sessions import Viewer

router = APIRouter(include_in_schema=False)
CONFIRM_TITLE = "Confirm your new email address"
SENT = {
    "verify": "We mailed you a new confirmation link.",
    "change": "We mailed a link to the new address: the change is made when it is opened.",
}
DONE = {
    "verified": "Thanks: your email address is confirmed.",
    "changed": "Your email address is changed.",
    "alert": "Low-balance alert saved.",
}


def _notice(request: Request) -> str | None:
    """What the redirect after a form says it did (the query names it)."""
    q = request.query_params
    if q.get("limited", "").isdigit():
        return f"Too many emails asked for; try again in {q['limited']} seconds."
    if q.get("sent") in SENT:
        return SENT[q["sent"]]
    return next((text for name, text in DONE.items() if q.get(name)), None)


def _page(
    request: Request, who: Viewer, status: int = 200, *, error: str | None = None, **kw: object
) -> Response:
    settings = core_state(request).settings
    return page(
        request,
        "profile_email.html",
        who,
        status,
        error=error,
        notice=None if error else _notice(request),
        required=settings.require_email_verification,
        **kw,
    )


@router.get("/profile/email")
async def email_page(request: Request, who: SignedIn) -> Response:
    return _page(request, who)


@router.post("/profile/email")
async def ask_to_change(request: Request, who: SignedIn) -> Response:
    """Mail a confirmation link to the new address (the password proves it is the user)."""
    fields = await form(request)
    check_csrf(request, who.csrf_token, fields)
    given = fields.get("email", "")
    user = who.user
    try:
        new_email = users.normal_email(given)
    except InvalidRequest as exc:
        return _page(request, who, 400, error=exc.message, new_email=given)
    if new_email == user.email:
        return _page(request, who, 400, error="That is your address already", new_email=given)
    if not await passwords_of(request).verify(user.password_hash, fields.get("password", "")):
        return _page(request, who, 400, error="Wrong password", new_email=given)
    try:
        await limits_of(request).emailed_link(user.id)
    except RateLimited as exc:
        wait = exc.headers["Retry-After"]
        message = f"Too many emails asked for; try again in {wait} seconds"
        return _page(request, who, 429, error=message, new_email=given)
    core = core_state(request)
    async with core.db.write() as session:
        if await users.by_email(session, new_email) is not None:
            token = None
        else:
            ttl = core.settings.email_change_ttl_s
            token = await email_tokens.issue(session, user.id, "change_email", new_email, ttl_s=ttl)
    if token is None:
        error = "That address belongs to another account"
        return _page(request, who, 409, error=error, new_email=given)
    mail = compose(
        "change_email",
        new_email,
        link=link(request, f"/profile/email/confirm?token={token}"),
        old_email=user.email,
        hours=max(1, core.settings.email_change_ttl_s // 3600),
    )
    outbox_of(request).post(mail)
    return redirect("/profile/email?sent=change")


@router.get("/profile/email/confirm")
async def confirm_page(request: Request) -> Response:
    token = request.query_params.get("token", "")
    async with core_state(request).db.read() as session:
        found = await email_tokens.peek(session, token, "change_email") if token else None
    return auth_page(
        request,
        "email_link.html",
        200 if found else 400,
        title=CONFIRM_TITLE,
        token=token if found else None,
        explain=f"Sign in as {found.email} from now on." if found else "",
        action="/profile/email/confirm",
        button="Use this address",
    )


@router.post("/profile/email/confirm")
async def confirm(request: Request, who: MaybeViewer) -> Response:
    """The link was opened from the new address's mailbox: make the change, tell the old."""
    fields = await form(request)
    check_csrf(request, request.cookies.get(CSRF_COOKIE), fields)
    db = core_state(request).db
    taken = "That address belongs to another account now; the change was not made."
    try:
        async with db.write() as session:
            spent = await email_tokens.spend(session, fields.get("token", ""), "change_email")
            if spent is None:
                return auth_page(request, "email_link.html", 400, title=CONFIRM_TITLE)
            new_email = spent.email
            old_email = await users.change_email(session, spent.user_id, new_email)
    except (users.EmailTaken, IntegrityError):  # IntegrityError: taken by a concurrent twin
        return auth_page(request, "email_link.html", 409, title=CONFIRM_TITLE, dead=taken)
    outbox_of(request).post(compose("email_changed", old_email, new_email=new_email))
    if who is not None:
        return redirect("/profile/email?changed=1")
    notice = f"Your account now signs in as {new_email}."
    return auth_page(request, "email_link.html", title=CONFIRM_TITLE, notice=notice, next="/login")


@router.post("/profile/email/alert")
async def set_alert(request: Request, who: SignedIn) -> Response:
    """The low-balance alert's threshold (blank: off); a new threshold re-arms it."""
    fields = await form(request)
    check_csrf(request, who.csrf_token, fields)
    given = fields.get("threshold", "").strip()
    try:
        threshold = ledger.parse_amount(given) if given else None
    except InvalidRequest:
        error = "The alert threshold is a whole number of credits (blank: no alert)"
        return _page(request, who, 400, error=error, threshold_given=given)
    async with core_state(request).db.write() as session:
        await session.execute(
            update(User)
            .where(User.id == who.user.id)
            .values(low_balance_threshold=threshold, low_balance_alerted_at=None)
        )
    return redirect("/profile/email?alert=1")
