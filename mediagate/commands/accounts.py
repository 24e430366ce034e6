"""keys, admin, codes and credits: the commands that read and write accounts. What only
one command needs is imported by that command."""

import argparse
import getpass
import json
import os
import sys
from datetime import UTC, date, datetime, time, timedelta

from mediagate.accounts import service as accounts
from mediagate.core.clock import isoformat, utcnow
from mediagate.core.db import Database
from mediagate.core.errors import InvalidRequest
from mediagate.core.settings import Settings
from mediagate.keys import service as keys
from mediagate.keys.limits import describe_limits, parse_limits
from mediagate.ledger import service as ledger


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
        names = await accounts.names_by_id(session, {key.account_id for key in rows})
    width = max([len("ACCOUNT"), *(len(n) for n in names.values())])
    print(
        f"{'ID':<22} {'ACCOUNT':<{width}} {'MODE':<5} {'KEY':<20} {'CREATED':<21} "
        f"{'LAST USED':<21} STATE"
    )
    for key in rows:
        state = (
            "revoked"
            if key.revoked_at
            else "expired"
            if key.expires_at and key.expires_at <= utcnow()
            else "active"
        )
        created, used = isoformat(key.created_at), isoformat(key.last_used_at) or "-"
        account = names.get(key.account_id, key.account_id)
        print(
            f"{key.id:<22} {account:<{width}} {key.mode:<5} {key.hint:<20} {created:<21} "
            f"{used:<21} {state}"
        )


async def keys_revoke(db: Database, settings: Settings, args: argparse.Namespace) -> None:
    async with db.write() as session:
        key = await keys.revoke(session, args.key_id)
    print(f"Revoked {key.id} ({key.hint})")


async def keys_limit(db: Database, settings: Settings, args: argparse.Namespace) -> None:
    from mediagate.catalog.loader import load_catalog

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
    from mediagate.accounts import users
    from mediagate.accounts.passwords import hash_blocking  # its word lists take ~0.1 s

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
    from mediagate.billing import codes

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
