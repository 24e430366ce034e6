"""`mediagate` command line: serve, worker, migrate, providers, models, keys, admin, codes,
credits.

This module only parses: each command's module (mediagate/commands/) is imported when
that command runs, so `--help` and the small commands start without loading the web app,
the payment library or the storage clients."""

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import Any

Run = Callable[[Any, argparse.Namespace], None]


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    from mediagate.core.errors import MediagateError
    from mediagate.core.logs import configure_logging
    from mediagate.core.settings import Settings

    settings = Settings()
    configure_logging(settings.log_level)
    try:
        args.func(settings, args)
    except MediagateError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        sys.exit(1)


def lazy(module: str, name: str, *, database: bool = False) -> Run:
    """The command `name` of mediagate.commands.`module`, imported when it runs;
    `database`: an async command given an open Database."""

    def run(settings: Any, args: argparse.Namespace) -> None:
        command = getattr(importlib.import_module(f"mediagate.commands.{module}"), name)
        if database:
            from mediagate.commands import in_database

            command = in_database(command)
        command(settings, args)

    return run


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mediagate", description=__doc__)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="migrate, then serve the API (and run tasks, by default)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--workers", type=int, default=1, help="server processes")
    p.add_argument("--no-runner", action="store_true", help="do not run tasks in this process")
    p.set_defaults(func=lazy("serving", "cmd_serve"))

    p = sub.add_parser("worker", help="run tasks (no HTTP)")
    p.add_argument("--grace", type=float, default=10.0, help="seconds to finish steps on SIGTERM")
    p.add_argument("--metrics-port", type=int, help="serve /metrics and /healthz on this port")
    p.add_argument("--metrics-host", default="127.0.0.1")
    p.set_defaults(func=lazy("serving", "cmd_worker"))

    p = sub.add_parser("migrate", help="apply database migrations")
    p.set_defaults(func=lazy("serving", "cmd_migrate"))

    p = sub.add_parser("providers", help="configured providers, breakers, recent errors")
    p.set_defaults(func=lazy("catalog", "cmd_providers", database=True))
    check = p.add_subparsers(metavar="ACTION").add_parser(
        "check", help="do the configured credentials work? (creates no task)"
    )
    check.set_defaults(func=lazy("catalog", "cmd_providers_check"))

    p = sub.add_parser("models", help="list the model catalog")
    p.set_defaults(func=lazy("catalog", "cmd_models"))

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
    p.set_defaults(func=lazy("accounts", "keys_create", database=True))
    p = k.add_parser("list", help="list keys")
    p.add_argument("--account")
    p.set_defaults(func=lazy("accounts", "keys_list", database=True))
    p = k.add_parser("revoke", help="revoke a key by id")
    p.add_argument("key_id")
    p.set_defaults(func=lazy("accounts", "keys_revoke", database=True))
    p = k.add_parser("limit", help="set a key's limits (replaces them all; no option: no limits)")
    p.add_argument("key_id")
    p.add_argument("--models", default="", help="comma-separated model ids it may use")
    p.add_argument("--ips", default="", help="comma-separated addresses or CIDR ranges")
    p.add_argument("--daily", default="", help="credits it may spend per UTC day")
    p.add_argument("--monthly", default="", help="credits it may spend per calendar month")
    p.add_argument("--total", default="", help="credits it may spend in all")
    p.set_defaults(func=lazy("accounts", "keys_limit", database=True))

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
    p.set_defaults(func=lazy("accounts", "admin_create", database=True))

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
    p.set_defaults(func=lazy("accounts", "codes_create", database=True))

    c = sub.add_parser("credits", help="credits").add_subparsers(required=True, metavar="ACTION")
    p = c.add_parser("grant", help="grant credits to an account")
    p.add_argument("account")
    p.add_argument("amount", type=_credits)
    p.add_argument("--test", action="store_true", help="grant test credits")
    p.add_argument("--reason", default="granted from the command line")
    p.set_defaults(func=lazy("accounts", "credits_grant", database=True))
    p = c.add_parser("show", help="show an account's balances")
    p.add_argument("account")
    p.set_defaults(func=lazy("accounts", "credits_show", database=True))
    return parser


def _credits(text: str, *, zero: bool = False) -> int:
    """argparse type: a credit amount within the ledger's bounds (argparse reports why not)."""
    from mediagate.core.errors import MediagateError
    from mediagate.ledger.service import parse_amount

    try:
        return parse_amount(text, zero=zero)
    except MediagateError as exc:
        raise argparse.ArgumentTypeError(f"{exc.message} (got {text[:40]!r})") from None


def _credits_or_zero(text: str) -> int:
    return _credits(text, zero=True)
