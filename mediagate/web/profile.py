"""The profile page: display name, password (changing it signs out every other session),
the signed-in sessions (end one, or all others), two-factor sign-in (enrol, new recovery
codes, turn off) and
deleting the account. Whatever asks for the password is rate limited as sign-in is."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mediagate.accounts import deletion, two_factor, users
from mediagate.accounts.passwords import Passwords, check_new
from mediagate.accounts.totp import enrolment_uri, qr_svg
from mediagate.core.clock import utcnow
from mediagate.core.errors import InvalidRequest, RateLimited
from mediagate.core.state import core_state
from mediagate.mail.messages import compose
from mediagate.mail.outbox import outbox_of
from mediagate.web import sessions
from mediagate.web.auth_limits import AuthLimits
from mediagate.web.render import page, redirect
from mediagate.web.security import SESSION_COOKIE, SignedIn, check_csrf, form
from mediagate.web.sessions import Viewer
from mediagate.web.two_factor import box_of

router = APIRouter(include_in_schema=False)
PROFILE = "/profile"
NAME_MAX = 100


async def _profile_page(
    request: Request, who: Viewer, status: int = 200, **context: Any
) -> Response:
    async with core_state(request).db.read() as session:
        signed_in = await sessions.signed_in_list(session, who.user.id)
        user = await session.get_one(users.User, who.user.id)
        codes_left = await two_factor.recovery_left(session, user.id)
    return page(
        request,
        "profile.html",
        who,
        status,
        user=user,
        sessions=signed_in,
        two_factor_on=two_factor.enabled(user),
        codes_left=codes_left,
        grace_days=core_state(request).settings.account_delete_grace_days,
        **context,
    )


async def _refused(request: Request, who: Viewer, exc: InvalidRequest) -> Response:
    return await _profile_page(request, who, 400, error=exc.message)


async def _check_password(request: Request, who: Viewer, password: str) -> None:
    """The user's own password, or InvalidRequest naming the field (RateLimited when
    tried too often, like sign-in)."""
    limits: AuthLimits = request.app.state.auth_limits
    address = request.client.host if request.client else "unknown"
    await limits.login(address, who.user.email)
    passwords: Passwords = request.app.state.passwords
    if not await passwords.verify(who.user.password_hash, password):
        raise InvalidRequest("The current password is not right", param="current_password")


@router.get(PROFILE)
async def profile(request: Request, who: SignedIn) -> Response:
    return await _profile_page(request, who)


@router.post(f"{PROFILE}/name")
async def set_name(request: Request, who: SignedIn) -> Response:
    fields = await form(request)
    check_csrf(request, who.csrf_token, fields)
    name = " ".join(fields.get("display_name", "").split())
    if len(name) > NAME_MAX:
        return await _refused(
            request,
            who,
            InvalidRequest(
                f"Display names are at most {NAME_MAX} characters", param="display_name"
            ),
        )
    async with core_state(request).db.write() as session:
        user = await session.get_one(users.User, who.user.id)
        user.display_name = name or None
    return redirect(PROFILE)


@router.post(f"{PROFILE}/password")
async def change_password(request: Request, who: SignedIn) -> Response:
    fields = await form(request)
    check_csrf(request, who.csrf_token, fields)
    new = fields.get("new_password", "")
    try:
        await _check_password(request, who, fields.get("current_password", ""))
        try:
            check_new(new)
        except InvalidRequest as exc:
            raise InvalidRequest(exc.message, param="new_password") from exc
    except InvalidRequest as exc:
        return await _refused(request, who, exc)
    except RateLimited as exc:
        return await _limited(request, who, exc)
    passwords: Passwords = request.app.state.passwords
    password_hash = await passwords.hash(new)
    async with core_state(request).db.write() as session:
        await users.set_password_hash(session, who.user.id, password_hash)
        ended = await sessions.end_others(session, who.user.id, who.session_id)
    notice = "Password changed." + (
        f" {ended} other session{'s' if ended != 1 else ''} signed out." if ended else ""
    )
    return await _profile_page(request, who, notice=notice)


async def _limited(request: Request, who: Viewer, exc: RateLimited) -> Response:
    wait = exc.headers["Retry-After"]
    response = await _profile_page(
        request, who, 429, error=f"Too many password attempts; try again in {wait} seconds"
    )
    response.headers.update(exc.headers)
    return response


@router.post(f"{PROFILE}/sessions/{{session_id}}/end")
async def end_session(request: Request, session_id: str, who: SignedIn) -> Response:
    fields = await form(request)
    check_csrf(request, who.csrf_token, fields)
    async with core_state(request).db.write() as session:
        await sessions.end_one(session, who.user.id, session_id)
    if session_id == who.session_id:  # this browser signed itself out
        response = redirect("/login")
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response
    return redirect(PROFILE)


@router.post(f"{PROFILE}/sessions/end-others")
async def end_other_sessions(request: Request, who: SignedIn) -> Response:
    fields = await form(request)
    check_csrf(request, who.csrf_token, fields)
    async with core_state(request).db.write() as session:
        ended = await sessions.end_others(session, who.user.id, who.session_id)
    return await _profile_page(
        request, who, notice=f"{ended} other session{'s' if ended != 1 else ''} signed out."
    )


def _enrolment(
    request: Request, who: Viewer, secret: str, status: int = 200, **extra: Any
) -> Response:
    uri = enrolment_uri(secret, who.user.email, core_state(request).settings.totp_issuer)
    return page(
        request, "two_factor.html", who, status, secret=secret, uri=uri, qr=qr_svg(uri), **extra
    )


@router.post(f"{PROFILE}/two-factor/setup")
async def two_factor_setup(request: Request, who: SignedIn) -> Response:
    fields = await form(request)
    check_csrf(request, who.csrf_token, fields)
    try:
        async with core_state(request).db.write() as session:
            secret = await two_factor.begin(session, who.user.id, box_of(request))
    except InvalidRequest as exc:
        return await _refused(request, who, exc)
    return _enrolment(request, who, secret)


@router.post(f"{PROFILE}/two-factor/confirm")
async def two_factor_confirm(request: Request, who: SignedIn) -> Response:
    fields = await form(request)
    check_csrf(request, who.csrf_token, fields)
    box = box_of(request)
    try:
        async with core_state(request).db.write() as session:
            codes = await two_factor.confirm(
                session, who.user.id, fields.get("code", ""), box, utcnow()
            )
    except InvalidRequest as exc:
        async with core_state(request).db.read() as session:
            user = await session.get_one(users.User, who.user.id)
        secret = two_factor.pending_secret(user, box)
        if secret is None:
            return await _refused(request, who, exc)
        return _enrolment(request, who, secret, 400, error=exc.message)
    return page(request, "recovery_codes.html", who, codes=codes)


@router.post(f"{PROFILE}/two-factor/disable")
async def two_factor_disable(request: Request, who: SignedIn) -> Response:
    fields = await form(request)
    check_csrf(request, who.csrf_token, fields)
    try:
        await _two_factor_limit(request, who)
    except RateLimited as exc:
        return await _limited(request, who, exc)
    async with core_state(request).db.write() as session:
        user = await session.get_one(users.User, who.user.id)
        used = await two_factor.verify(
            session, user, fields.get("code", ""), box_of(request), utcnow()
        )
        if used:
            await two_factor.disable(session, who.user.id)
    if not used:
        return await _refused(request, who, InvalidRequest(two_factor.WRONG_CODE, param="code"))
    return await _profile_page(request, who, notice="Two-factor sign-in is off.")


@router.post(f"{PROFILE}/two-factor/recovery-codes")
async def two_factor_new_codes(request: Request, who: SignedIn) -> Response:
    """A new set of recovery codes (the old ones stop working), for a current code."""
    fields = await form(request)
    check_csrf(request, who.csrf_token, fields)
    try:
        await _two_factor_limit(request, who)
    except RateLimited as exc:
        return await _limited(request, who, exc)
    box, now = box_of(request), utcnow()
    async with core_state(request).db.write() as session:
        user = await session.get_one(users.User, who.user.id)
        used = await two_factor.verify(session, user, fields.get("code", ""), box, now)
        codes = await two_factor.new_recovery_codes(session, user.id, box, now) if used else []
    if not codes:
        return await _refused(request, who, InvalidRequest(two_factor.WRONG_CODE, param="code"))
    return page(request, "recovery_codes.html", who, codes=codes, renewed=True)


async def _two_factor_limit(request: Request, who: Viewer) -> None:
    limits: AuthLimits = request.app.state.auth_limits
    await limits.two_factor(who.user.id)


@router.post(f"{PROFILE}/delete")
async def delete_account(request: Request, who: SignedIn) -> Response:
    fields = await form(request)
    check_csrf(request, who.csrf_token, fields)
    core = core_state(request)
    try:
        if fields.get("confirm", "") != "delete":
            raise InvalidRequest("Type the word delete to confirm", param="confirm")
        await _check_password(request, who, fields.get("current_password", ""))
        if two_factor.enabled(who.user):
            await _two_factor_limit(request, who)
    except InvalidRequest as exc:
        return await _refused(request, who, exc)
    except RateLimited as exc:
        return await _limited(request, who, exc)
    now = utcnow()
    try:
        async with core.db.write() as session:
            user = await session.get_one(users.User, who.user.id)
            if two_factor.enabled(user) and not await two_factor.verify(
                session, user, fields.get("code", ""), box_of(request), now
            ):
                raise InvalidRequest(two_factor.WRONG_CODE, param="code")
            email = await deletion.delete_account(session, who.user.id, now)
    except InvalidRequest as exc:
        return await _refused(request, who, exc)
    request.app.state.key_cache.clear()  # refused here at once; elsewhere within its TTL
    days = core.settings.account_delete_grace_days
    outbox_of(request).post(compose("account_deleted", email, days=f"{days:g}"))
    response = redirect("/login?deleted=1")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
