"""Each mode signs with its own whsec_ secret: a test key (and the sandbox receiver it
configures) never holds what verifies live callbacks."""

import asyncio
import json
from typing import Any

import httpx2
from alembic import command
from sqlalchemy import text

from mediagate.core.db import Database
from mediagate.core.migrate import alembic_config, upgrade
from mediagate.webhooks import service as webhooks
from tests.factories import KeyFactory
from tests.webhooks.test_callbacks import Receiver, verify


async def account_secret(client: httpx2.AsyncClient, headers: dict[str, str]) -> str:
    answer = await client.get("/api/v1/account", headers=headers)
    return str(answer.json()["data"]["webhook_secret"])


async def test_finding_12_test_and_live_callbacks_are_signed_with_their_own_secret(
    gateway: Any, keys: KeyFactory, receiver: Receiver
) -> None:
    live = await keys(account="both", mode="live")
    test = await keys(account="both", mode="test")
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=gateway), base_url="http://gw"
    ) as c:
        live_secret = await account_secret(c, live.headers)
        test_secret = await account_secret(c, test.headers)
    assert live_secret.startswith("whsec_") and test_secret.startswith("whsec_")
    assert live_secret != test_secret
    url = f"https://localhost:{receiver.port}/h"
    async with gateway.state.core.db.write() as session:
        for mode in ("live", "test"):
            await webhooks.enqueue(
                session,
                task_id=f"task_{mode}",
                account_id=live.account_id,
                mode=mode,
                url=url,
                payload={"task_id": f"task_{mode}"},
            )
    assert await gateway.state.components.callbacks.deliver_due() == 2
    signed = {json.loads(body)["task_id"]: (h, body) for h, body in receiver.received}
    assert verify(live_secret, *signed["task_live"]) and verify(test_secret, *signed["task_test"])
    assert not verify(test_secret, *signed["task_live"])  # a test secret cannot vouch for live
    assert not verify(live_secret, *signed["task_test"])


async def test_migration_0007_back_fills_both_secrets(make_settings: Any) -> None:
    """The old secret stays live (live receivers keep verifying); test gets its own; an
    account without any gets both."""
    settings = make_settings()
    config = alembic_config(settings)
    await asyncio.to_thread(upgrade, settings)
    await asyncio.to_thread(command.downgrade, config, "0006")
    db = Database(settings.db_url)
    try:
        async with db.write() as session:
            for account_id, secret in (
                ("acc_old", "whsec_b2xkLXNlY3JldC0xMjM0NTY3OA=="),
                ("acc_none", None),
            ):
                await session.execute(
                    text(
                        "INSERT INTO accounts (id, name, created_at, webhook_secret,"
                        " tasks_in_progress) VALUES (:id, :id, CURRENT_TIMESTAMP, :secret, 0)"
                    ),
                    {"id": account_id, "secret": secret},
                )
        await db.dispose()
        await asyncio.to_thread(upgrade, settings)
        db = Database(settings.db_url)
        async with db.read() as session:
            rows = {
                row[0]: (row[1], row[2])
                for row in await session.execute(
                    text("SELECT id, webhook_secret_live, webhook_secret_test FROM accounts")
                )
            }
    finally:
        await db.dispose()
    old_live, old_test = rows["acc_old"]
    assert old_live == "whsec_b2xkLXNlY3JldC0xMjM0NTY3OA=="
    assert old_test.startswith("whsec_") and old_test != old_live
    new_live, new_test = rows["acc_none"]
    assert new_live.startswith("whsec_") and new_test.startswith("whsec_") and new_live != new_test
