"""The server command line: its help lists every command, and `--help` and the small
commands start without importing the web app, the payment library or storage clients."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from mediagate.cli import _parser
from mediagate.core.settings import Settings

HEAVY = ("mediagate.app", "fastapi", "uvicorn", "stripe", "boto3", "av", "PIL", "aiosmtplib")
"""What a command that neither serves nor renders must not import."""

PROBE = """
import json, sys
from mediagate.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = {heavy!r}
print(json.dumps(sorted(m for m in heavy if m in sys.modules)), file=sys.stderr)
"""


def run_cli(settings: Settings, *args: str) -> tuple[str, list[str]]:
    """Run the CLI in a fresh interpreter; its output and the heavy modules it imported."""
    env = {
        **os.environ,
        "MEDIAGATE_DATA_DIR": str(settings.data_dir),
        "MEDIAGATE_SECRET_KEY": "test-secret-key",
        "PYTHONPATH": str(Path(__file__).parent.parent),
    }
    if settings.database_url:
        env["MEDIAGATE_DATABASE_URL"] = settings.database_url
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    imported: list[str] = json.loads(done.stderr.strip().splitlines()[-1])
    return done.stdout, imported


def test_help_lists_every_command_and_loads_nothing_heavy(settings: Settings) -> None:
    out, imported = run_cli(settings, "--help")
    commands = _parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(commands) == {
        *("serve", "worker", "migrate", "providers", "models"),
        *("keys", "admin", "codes", "credits"),
    }
    for name in commands:
        assert f"    {name}" in out, out
    assert imported == []


def test_keys_list_shows_each_keys_account_without_the_web_app(settings: Settings) -> None:
    created, _ = run_cli(settings, "keys", "create", "--account", "acme-films", "--json")
    key = json.loads(created)
    out, imported = run_cli(settings, "keys", "list")
    header, *rows = out.strip().splitlines()
    assert header.split()[:3] == ["ID", "ACCOUNT", "MODE"]
    row: Any = next(r for r in rows if r.startswith(key["id"]))
    assert row.split()[1:3] == ["acme-films", "live"]
    assert imported == []
