"""The signed-in user's pages: overview, models and model docs (public), API console,
keys, credits & usage (with CSV), tasks gallery."""

import csv
import io
import json
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mediagate.accounts import users
from mediagate.catalog.schemas import example_request, limits_text, model_as_data
from mediagate.catalog.spec import REFERENCE_PARAM
from mediagate.core.clock import utcnow
from mediagate.core.errors import InvalidRequest
from mediagate.core.http import files_base, public_base
from mediagate.core.state import core_state
from mediagate.keys import service as keys
from mediagate.keys.limits import describe_limits, parse_limits
from mediagate.ledger import service as ledger
from mediagate.media.expiry import Retention
from mediagate.media.references import EXAMPLES_PATH
from mediagate.tasks.models import Task
from mediagate.tasks.service import UNCHARGED, task_as_data
from mediagate.web import charts, history, usage_stats
from mediagate.web.model_list import ModelFilter, filter_choices, model_groups
from mediagate.web.render import csv_download, page, redirect
from mediagate.web.security import MaybeViewer, SignedIn, check_csrf, form
from mediagate.web.sessions import Viewer

router = APIRouter(include_in_schema=False)
FIRST_KEY_NAME = "first test key"
EXAMPLE_IMAGE = "fox.png"
GRACE_CHOICES = {"0": 0, "3600": 3600, "86400": 86400, "604800": 604800}


def gallery_cards(request: Request, rows: list[Task]) -> list[dict[str, Any]]:
    """The public task objects of a gallery, each with its prompt."""
    base, retention = files_base(request), Retention.from_settings(core_state(request).settings)
    return [{**task_as_data(t, base, retention), "prompt": t.params.get("prompt")} for t in rows]


@router.get("/")
async def home(request: Request, who: MaybeViewer) -> Response:
    """Signed in: the overview. Otherwise what this gateway offers, and its models."""
    if who:
        return redirect("/dashboard")
    catalog = core_state(request).catalog
    return page(request, "landing.html", None, models=list(catalog.models.values()))


@router.get("/dashboard")
async def dashboard(request: Request, who: SignedIn) -> Response:
    account_id = who.user.account_id
    core = core_state(request)
    async with core.db.read() as session:
        balances = {m: await ledger.balance(session, account_id, m) for m in ("live", "test")}
        recent = await history.tasks_page(session, account_id, history.TaskFilter(), 1, 6)
        has_keys = bool(await keys.list_keys(session, account_id))
    first_key = None
    if not has_keys:  # a new account's first visit: a test key to start with, shown once
        async with core.db.write() as session:
            _, first_key = await keys.create_key(
                session,
                core.settings.hmac_secret,
                account_id=account_id,
                mode="test",
                name=FIRST_KEY_NAME,
            )
    return page(
        request,
        "dashboard.html",
        who,
        balances=balances,
        tasks=gallery_cards(request, recent[:6]),
        first_key=first_key,
    )


@router.get("/models")
async def models(request: Request, who: MaybeViewer) -> Response:
    catalog = core_state(request).catalog
    chosen = ModelFilter.from_query(request.query_params)
    return page(
        request,
        "models.html",
        who,
        groups=model_groups(catalog, chosen),
        chosen=chosen,
        choices=filter_choices(catalog),
    )


@router.get("/models/{model_id}")
async def model_page(request: Request, model_id: str, who: MaybeViewer) -> Response:
    spec = core_state(request).catalog.get(model_id)
    base = public_base(request)
    body = example_request(spec)
    if REFERENCE_PARAM in body:  # an image this server hosts, so the curl works as written
        body[REFERENCE_PARAM] = [f"{base}{EXAMPLES_PATH}{EXAMPLE_IMAGE}"]
    return page(
        request,
        "model.html",
        who,
        spec=spec,
        model=model_as_data(spec),
        base=base,
        example=json.dumps(body).replace("'", "'\\''"),
        limits=limits_text,
    )


@router.get("/console")
async def console(request: Request, who: SignedIn) -> Response:
    core = core_state(request)
    async with core.db.read() as session:
        rows = await keys.list_keys(session, who.user.account_id)
    now = utcnow()
    usable = [
        k
        for k in sorted(rows, key=lambda k: k.created_at, reverse=True)
        if not k.revoked_at and (not k.expires_at or k.expires_at > now)
    ]
    return page(
        request, "console.html", who, models=list(core.catalog.models.values()), keys=usable
    )


async def _keys_page(
    request: Request,
    who: Viewer,
    *,
    created: str | None = None,
    error: str | None = None,
    status: int | None = None,
) -> Response:
    async with core_state(request).db.read() as session:
        rows = await keys.list_keys(session, who.user.account_id)
    required = core_state(request).settings.require_email_verification
    return page(
        request,
        "keys.html",
        who,
        status or (400 if error else 200),
        verify_first=users.needs_verification(required, who.user),
        required=required,
        keys=sorted(rows, key=lambda k: k.created_at, reverse=True),
        limits={k.id: keys.limits_of(k) for k in rows},
        describe_limits=describe_limits,
        models=list(core_state(request).catalog.models),
        created=created,
        error=error,
        now=utcnow(),
    )


@router.get("/keys")
async def keys_page(request: Request, who: SignedIn) -> Response:
    return await _keys_page(request, who)


@router.post("/keys")
async def create_key(request: Request, who: SignedIn) -> Response:
    fields = await form(request)
    check_csrf(request, who.csrf_token, fields)
    mode = fields.get("mode", "test")
    name = fields.get("name", "").strip()[:200]
    if mode not in ("live", "test"):
        return await _keys_page(request, who, error="Choose live or test")
    core = core_state(request)
    if mode == "live" and users.needs_verification(
        core.settings.require_email_verification, who.user
    ):
        error = users.UNVERIFIED.format(email=who.user.email)
        return await _keys_page(request, who, error=error, status=403)
    async with core.db.write() as session:
        _, raw = await keys.create_key(
            session, core.settings.hmac_secret, account_id=who.user.account_id, mode=mode, name=name
        )
    return await _keys_page(request, who, created=raw)


@router.post("/keys/{key_id}/revoke")
async def revoke_key(request: Request, key_id: str, who: SignedIn) -> Response:
    fields = await form(request)
    check_csrf(request, who.csrf_token, fields)
    async with core_state(request).db.write() as session:
        await keys.revoke(session, key_id, account_id=who.user.account_id)
    request.app.state.key_cache.clear()  # refused here at once; elsewhere within its TTL
    return redirect("/keys")


@router.post("/keys/{key_id}/limits")
async def limit_key(request: Request, key_id: str, who: SignedIn) -> Response:
    fields = await form(request)
    check_csrf(request, who.csrf_token, fields)
    core = core_state(request)
    try:
        limits = parse_limits(
            models=" ".join(n.removeprefix("model:") for n in fields if n.startswith("model:")),
            networks=fields.get("networks", ""),
            day=fields.get("cap_day", ""),
            month=fields.get("cap_month", ""),
            total=fields.get("cap_total", ""),
            known_models=tuple(core.catalog.models),
        )
        async with core.db.write() as session:
            await keys.set_limits(session, key_id, limits, account_id=who.user.account_id)
    except InvalidRequest as exc:
        return await _keys_page(request, who, error=exc.message)
    request.app.state.key_cache.clear()
    return redirect("/keys")


@router.post("/keys/{key_id}/rotate")
async def rotate_key(request: Request, key_id: str, who: SignedIn) -> Response:
    fields = await form(request)
    check_csrf(request, who.csrf_token, fields)
    grace = GRACE_CHOICES.get(fields.get("grace", ""))
    if grace is None:
        return await _keys_page(request, who, error="Choose how long the old key keeps working")
    core = core_state(request)
    try:
        async with core.db.write() as session:
            _, raw = await keys.rotate(
                session,
                core.settings.hmac_secret,
                key_id,
                account_id=who.user.account_id,
                grace_s=grace,
            )
    except InvalidRequest as exc:
        return await _keys_page(request, who, error=exc.message)
    request.app.state.key_cache.clear()
    return await _keys_page(request, who, created=raw)


def _filter(request: Request) -> history.TaskFilter:
    q = request.query_params

    def day(name: str) -> date | None:
        try:
            return date.fromisoformat(q[name]) if q.get(name) else None
        except ValueError:
            return None

    return history.TaskFilter(
        model=q.get("model", ""),
        status=q.get("status", ""),
        key_id=q.get("key", ""),
        since=day("since"),
        until=day("until"),
    )


def _page_number(request: Request, name: str) -> int:
    try:
        return max(1, int(request.query_params.get(name, "1")))
    except ValueError:
        return 1


@router.get("/usage")
async def usage(request: Request, who: SignedIn) -> Response:
    account_id = who.user.account_id
    f = _filter(request)
    entries_at, tasks_at = _page_number(request, "entries"), _page_number(request, "tasks")
    chart_range, chart_mode = _chart_choice(request)
    today = utcnow().date()
    async with core_state(request).db.read() as session:
        balances = {m: await ledger.balance(session, account_id, m) for m in ("live", "test")}
        spend = await usage_stats.credits_per_day(
            session, account_id, chart_mode, chart_range, today
        )
        per_model = await usage_stats.tasks_per_model(
            session, account_id, chart_mode, chart_range, today
        )
        entries = await history.entries_page(session, account_id, entries_at)
        tasks = await history.tasks_page(session, account_id, f, tasks_at)
        key_rows = await keys.list_keys(session, account_id)
    return page(
        request,
        "usage.html",
        who,
        balances=balances,
        entries=entries[: history.PAGE],
        more_entries=len(entries) > history.PAGE,
        entries_at=entries_at,
        tasks=tasks[: history.PAGE],
        more_tasks=len(tasks) > history.PAGE,
        tasks_at=tasks_at,
        filter=f,
        keys=key_rows,
        models=list(core_state(request).catalog.models),
        query=request.url.query,
        ranges=usage_stats.RANGES,
        chart_range=chart_range,
        chart_mode=chart_mode,
        spend=charts.day_chart(spend),
        per_model=charts.model_rows(per_model),
    )


def _chart_choice(request: Request) -> tuple[int, str]:
    """The charts' range and mode from the query (30 days of live use by default)."""
    raw = request.query_params.get("range", "30")
    if not raw.isdigit() or int(raw) not in usage_stats.RANGES:
        raise InvalidRequest(
            f"range must be one of {', '.join(map(str, usage_stats.RANGES))}", param="range"
        )
    mode = request.query_params.get("chart_mode", "live")
    if mode not in ("live", "test"):
        raise InvalidRequest("chart_mode must be live or test", param="chart_mode")
    return int(raw), mode


@router.get("/usage/tasks.csv")
async def usage_csv(request: Request, who: SignedIn) -> Response:
    async with core_state(request).db.read() as session:
        rows = list(
            await session.scalars(history.tasks_query(who.user.account_id, _filter(request)))
        )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["task_id", "created_at", "model", "type", "mode", "key_id", "status", "credits", "error"]
    )
    for t in rows:
        writer.writerow(
            [
                t.id,
                t.created_at.isoformat(),
                t.model,
                t.type,
                t.mode,
                t.key_id,
                t.status,
                0 if t.status in UNCHARGED else t.price,
                t.error_type or "",
            ]
        )
    return csv_download(out.getvalue(), "tasks.csv")


@router.get("/tasks")
async def tasks_gallery(request: Request, who: SignedIn) -> Response:
    at = _page_number(request, "page")
    async with core_state(request).db.read() as session:
        rows = await history.tasks_page(session, who.user.account_id, _filter(request), at, 24)
    return page(
        request,
        "tasks.html",
        who,
        tasks=gallery_cards(request, rows[:24]),
        more=len(rows) > 24,
        at=at,
    )
