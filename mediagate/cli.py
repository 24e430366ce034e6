"""`mediagate` command line: serve, worker, migrate, keys, codes, credits, models."""

import argparse
import asyncio
import getpass
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import uvicorn
import uvloop

from mediagate.accounts import service as accounts
from mediagate.accounts import users
from mediagate.accounts.passwords import hash_blocking
from mediagate.app import build_components, build_runner
from mediagate.billing import codes
from mediagate.catalog.loader import load_catalog
from mediagate.core.clock import isoformat, utcnow
from mediagate.core.db import Database
from mediagate.core.errors import InvalidRequest, MediagateError
from mediagate.core.heap import freeze_startup_objects
from mediagate.core.logs import configure_logging
from mediagate.core.migrate import upgrade
from mediagate.core.serving import limited_protocol
from mediagate.core.settings import Settings
from mediagate.keys import service as keys
from mediagate.keys.limits import describe_limits, parse_limits
from mediagate.ledger import service as ledger
from mediagate.observability.endpoint import serve_worker_metrics
from mediagate.observability.metrics import Metrics
from mediagate.providers.check import check_providers
from mediagate.providers.configured import ALL_LIVE, configured_names
from mediagate.providers.health import provider_status

log = logging.getLogger("mediagate.cli")


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level)
    try:
        args.func(settings, args)
    except MediagateError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        sys.exit(1)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mediagate", description=__doc__)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="migrate, then serve the API (and run tasks, by default)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--workers", type=int, default=1, help="server processes")
    p.add_argument("--no-runner", action="store_true", help="do not run tasks in this process")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("worker", help="run tasks (no HTTP)")
    p.add_argument("--grace", type=float, default=10.0, help="seconds to finish steps on SIGTERM")
    p.add_argument("--metrics-port", type=int, help="serve /metrics and /healthz on this port")
    p.add_argument("--metrics-host", default="127.0.0.1")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("migrate", help="apply database migrations")
    p.set_defaults(func=lambda s, a: upgrade(s))

    p = sub.add_parser("providers", help="configured providers, breakers, recent errors")
    p.set_defaults(func=_run(cmd_providers))
    check = p.add_subparsers(metavar="ACTION").add_parser(
        "check", help="do the configured credentials work? (creates no task)"
    )
    check.set_defaults(func=cmd_providers_check)

    p = sub.add_parser("models", help="list the model catalog")
    p.set_defaults(func=cmd_models)

    k = sub.add_parser("keys", help="API keys").add_subparsers(required=True, metavar="ACTION")
    p = k.add_parser("create", help="create a key (the account is created if new)")
    p.add_argument("--account", required=True)
    p.add_argument("--test", action="store_true", help="an aio_test_ key (sandbox, test credits)")
    p.add_argument(
        "--credits", type=_credits_or_zero, default=0, help="also grant this many credits"
    )
    p.add_argument("--name", default="")
    p.add_argument("--expires-in-days", type=int)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_run(keys_create))
    p = k.add_parser("list", help="list keys")
    p.add_argument("--account")
    p.set_defaults(func=_run(keys_list))
    p = k.add_parser("revoke", help="revoke a key by id")
    p.add_argument("key_id")
    p.set_defaults(func=_run(keys_revoke))
    p = k.add_parser("limit", help="set a key's limits (replaces them all; no option: no limits)")
    p.add_argument("key_id")
    p.add_argument("--models", default="", help="comma-separated model ids it may use")
    p.add_argument("--ips", default="", help="comma-separated addresses or CIDR ranges")
    p.add_argument("--daily", default="", help="credits it may spend per UTC day")
    p.add_argument("--monthly", default="", help="credits it may spend per calendar month")
    p.add_argument("--total", default="", help="credits it may spend in all")
    p.set_defaults(func=_run(keys_limit))

    a = sub.add_parser("admin", help="dashboard operators").add_subparsers(
        required=True, metavar="ACTION"
    )
    p = a.add_parser("create", help="create an operator who can sign in to /admin")
    p.add_argument("--email", required=True)
    p.add_argument(
        "--password-env",
        default="MEDIAGATE_ADMIN_PASSWORD",
        help="environment variable holding the password (else it is asked for)",
    )
    p.set_defaults(func=_run(admin_create))

    r = sub.add_parser("codes", help="redemption codes").add_subparsers(
        required=True, metavar="ACTION"
    )
    p = r.add_parser("create", help="create a batch of codes (printed once, one per line)")
    p.add_argument("--credits", type=int, required=True, help="credits each code grants")
    p.add_argument("--count", type=int, required=True, help="how many codes")
    p.add_argument("--uses", type=int, default=1, help="redemptions per code (default 1)")
    p.add_argument("--expires", help="last day a code works (YYYY-MM-DD, UTC) or an ISO time")
    p.add_argument("--test", action="store_true", help="test credits, whoever redeems")
    p.add_argument("--note", default="")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_run(codes_create))

    c = sub.add_parser("credits", help="credits").add_subparsers(required=True, metavar="ACTION")
    p = c.add_parser("grant", help="grant credits to an account")
    p.add_argument("account")
    p.add_argument("amount", type=_credits)
    p.add_argument("--test", action="store_true", help="grant test credits")
    p.add_argument("--reason", default="granted from the command line")
    p.set_defaults(func=_run(credits_grant))
    p = c.add_parser("show", help="show an account's balances")
    p.add_argument("account")
    p.set_defaults(func=_run(credits_show))
    return parser


def _credits(text: str, *, zero: bool = False) -> int:
    """argparse type: a credit amount within the ledger's bounds (argparse reports why not)."""
    try:
        return ledger.parse_amount(text, zero=zero)
    except MediagateError as exc:
        raise argparse.ArgumentTypeError(f"{exc.message} (got {text[:40]!r})") from None


def _credits_or_zero(text: str) -> int:
    return _credits(text, zero=True)


Command = Callable[[Database, Settings, argparse.Namespace], Awaitable[None]]


def _run(command: Command) -> Callable[[Settings, argparse.Namespace], None]:
    def run(settings: Settings, args: argparse.Namespace) -> None:
        async def go() -> None:
            db = Database.for_settings(settings)
            try:
                await command(db, settings, args)
            finally:
                await db.dispose()

        asyncio.run(go())

    return run


async def keys_create(db: Database, settings: Settings, args: argparse.Namespace) -> None:
    mode: ledger.Mode = "test" if args.test else "live"
    expires = utcnow() + timedelta(days=args.expires_in_days) if args.expires_in_days else None
    async with db.write() as session:
        account, _ = await accounts.get_or_create(session, args.account)
        key, raw = await keys.create_key(
            session,
            settings.hmac_secret,
            account_id=account.id,
            mode=mode,
            name=args.name,
            expires_at=expires,
        )
        if args.credits:
            await ledger.grant(
                session, account.id, mode, args.credits, reason="granted with a new key"
            )
    if args.json:
        print(json.dumps({"key": raw, "id": key.id, "account": account.name, "mode": mode}))
        return
    print(
        f"Created {mode} key {key.id} for account {account.name}. "
        f"It is shown only once:\n\n  {raw}\n"
    )


async def keys_list(db: Database, settings: Settings, args: argparse.Namespace) -> None:
    async with db.read() as session:
        account_id = (
            (await accounts.get_by_name(session, args.account)).id if args.account else None
        )
        rows = await keys.list_keys(session, account_id)
    print(f"{'ID':<22} {'MODE':<5} {'KEY':<20} {'CREATED':<21} {'LAST USED':<21} STATE")
    for key in rows:
        state = (
            "revoked"
            if key.revoked_at
            else "expired"
            if key.expires_at and key.expires_at <= utcnow()
            else "active"
        )
        created, used = isoformat(key.created_at), isoformat(key.last_used_at) or "-"
        print(f"{key.id:<22} {key.mode:<5} {key.hint:<20} {created:<21} {used:<21} {state}")


async def keys_revoke(db: Database, settings: Settings, args: argparse.Namespace) -> None:
    async with db.write() as session:
        key = await keys.revoke(session, args.key_id)
    print(f"Revoked {key.id} ({key.hint})")


async def keys_limit(db: Database, settings: Settings, args: argparse.Namespace) -> None:
    limits = parse_limits(
        models=args.models,
        networks=args.ips,
        day=args.daily,
        month=args.monthly,
        total=args.total,
        known_models=tuple(load_catalog(settings.catalog_paths).models),
    )
    async with db.write() as session:
        key = await keys.set_limits(session, args.key_id, limits)
    print(f"{key.id} ({key.hint}): {describe_limits(limits)}")


async def admin_create(db: Database, settings: Settings, args: argparse.Namespace) -> None:
    password = os.environ.get(args.password_env) or getpass.getpass("Password: ")
    password_hash = hash_blocking(password)  # before the write unit: it takes ~0.3 s
    async with db.write() as session:
        user = await users.create_user(session, args.email, password_hash, admin=True)
        await users.mark_verified(session, user.id, user.email)  # the operator vouches
    print(f"operator {user.email} created; sign in at /login")


async def credits_grant(db: Database, settings: Settings, args: argparse.Namespace) -> None:
    mode: ledger.Mode = "test" if args.test else "live"
    async with db.write() as session:
        account = await accounts.get_by_name(session, args.account)
        await ledger.grant(session, account.id, mode, args.amount, reason=args.reason)
        balance = await ledger.balance(session, account.id, mode)
    print(f"Granted {args.amount} {mode} credits to {account.name}; available {balance.available}")


async def codes_create(db: Database, settings: Settings, args: argparse.Namespace) -> None:
    async with db.write() as session:
        batch, made = await codes.create_batch(
            session,
            settings.hmac_secret,
            credits=args.credits,
            count=args.count,
            uses=args.uses,
            expires_at=_expiry(args.expires),
            test=args.test,
            note=args.note,
            created_by="command line",
        )
    if args.json:
        print(json.dumps({"batch": batch.id, "credits": batch.credits, "codes": made}))
        return
    print(f"# batch {batch.id}: {len(made)} codes, {batch.credits} credits each", file=sys.stderr)
    print("\n".join(made))


def _expiry(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        if len(raw) == 10:  # a day: until its end, UTC
            return datetime.combine(date.fromisoformat(raw), time.max, tzinfo=UTC)
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidRequest(f"--expires: {raw!r} is not YYYY-MM-DD or an ISO time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def credits_show(db: Database, settings: Settings, args: argparse.Namespace) -> None:
    async with db.read() as session:
        account = await accounts.get_by_name(session, args.account)
        for mode in ledger.MODES:
            b = await ledger.balance(session, account.id, mode)
            print(f"{mode}: available {b.available}, held {b.held}, posted {b.posted}")


async def cmd_providers(db: Database, settings: Settings, args: argparse.Namespace) -> None:
    live = configured_names(settings)
    async with db.read() as session:
        for name in ("sandbox", *ALL_LIVE):
            configured = name == "sandbox" or name in live
            status = await provider_status(session, name)
            breakers = ", ".join(f"{s} ({w})" for w, s in sorted(status.breakers.items()))
            tasks = ", ".join(f"{k} {n}" for k, n in sorted(status.tasks_last_hour.items()))
            print(f"{name:<10} {'configured' if configured else 'not configured':<15}")
            print(f"  breakers:  {breakers or 'no runner reported in the last 5 minutes'}")
            print(f"  errors:    {status.errors_total} since the runners started")
            print(f"  last hour: {tasks or 'no tasks'}")


def cmd_providers_check(settings: Settings, args: argparse.Namespace) -> None:
    results = asyncio.run(check_providers(settings))
    if not results:
        print("no live provider is configured (test keys use the sandbox)")
    for result in results:
        print(f"{result.provider:<10} {'ok' if result.ok else 'FAILED':<7} {result.detail}")
    if not all(r.ok for r in results):
        sys.exit(1)


def cmd_models(settings: Settings, args: argparse.Namespace) -> None:
    for model in load_catalog(settings.catalog_paths).models.values():
        prices = ", ".join(f"{t.name}: {t.price.text()}" for t in model.types.values())
        print(f"{model.id:<24} {model.name} ({prices})")


def cmd_serve(settings: Settings, args: argparse.Namespace) -> None:
    overrides: dict[str, Any] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port:
        overrides["port"] = args.port
    if args.no_runner:
        overrides["embedded_runner"] = False
    settings = settings.model_copy(update=overrides)
    upgrade(settings)
    asyncio.run(_first_run(settings))
    _export(settings, overrides)
    uvicorn.run(
        "mediagate.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=args.workers,
        log_level=settings.log_level.lower(),
        access_log=False,
        log_config=None,
        http=limited_protocol(
            settings.header_timeout_s, settings.body_timeout_s, settings.max_header_bytes
        ),
        timeout_keep_alive=settings.keepalive_timeout_s,
        limit_concurrency=settings.max_connections,
    )


def _export(settings: Settings, overrides: dict[str, Any]) -> None:
    """Hand CLI overrides to the server processes (they build Settings from the environment)."""
    for name, value in overrides.items():
        os.environ[f"MEDIAGATE_{name.upper()}"] = (
            str(value).lower() if isinstance(value, bool) else str(value)
        )


async def _first_run(settings: Settings) -> None:
    """On an empty database, make a demo account with test credits and say how to use it."""
    db = Database.for_settings(settings)
    try:
        async with db.write() as session:
            if await accounts.count_accounts(session) > 0:
                return
            account, _ = await accounts.get_or_create(session, settings.demo_account)
            _, raw = await keys.create_key(
                session, settings.hmac_secret, account_id=account.id, mode="test", name="demo"
            )
            await ledger.grant(
                session, account.id, "test", settings.demo_credits, reason="demo credits"
            )
    finally:
        await db.dispose()
    base = settings.public_base_url or f"http://{settings.host}:{settings.port}"
    print(_WELCOME.format(key=raw, base=base, credits=settings.demo_credits), flush=True)


_WELCOME = """
  mediagate: first run. Created account "demo" with {credits} test credits and a test key
  (shown only this once; test keys use the built-in sandbox, no provider account needed):

    export MEDIAGATE_KEY={key}

  Generate:
    curl -s {base}/api/v1/images/generations \\
      -H "Authorization: Bearer $MEDIAGATE_KEY" -H "Content-Type: application/json" \\
      -d '{{"model": "kling-image-o1", "prompt": "A red fox in the snow", "aspect_ratio": "16:9"}}'

  Poll (use the task_id from the answer):
    curl -s {base}/api/v1/tasks/TASK_ID -H "Authorization: Bearer $MEDIAGATE_KEY"

  Dashboard, model docs and API console: {base}/  (sign up there;
  operators: mediagate admin create --email you@example.com)
"""


def cmd_worker(settings: Settings, args: argparse.Namespace) -> None:
    async def go() -> None:
        db = Database.for_settings(settings)
        components = build_components(db, settings)
        metrics = Metrics()
        runner = build_runner(
            db, settings, load_catalog(settings.catalog_paths), components, metrics
        )
        endpoint = (
            serve_worker_metrics(metrics, db, args.metrics_host, args.metrics_port)
            if args.metrics_port
            else None
        )
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        freeze_startup_objects()
        run = asyncio.create_task(runner.run())
        await stop.wait()
        log.info("stopping: finishing running steps (grace %.0f s)", args.grace)
        await runner.stop(args.grace)
        await run
        if endpoint is not None:
            server, serving = endpoint
            server.should_exit = True
            await serving
        await components.aclose()
        await db.dispose()

    uvloop.run(go())  # the loop `serve` runs on too (uvicorn picks uvloop)
