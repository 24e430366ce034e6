import asyncio
from typing import Any

import httpx2
from alembic import command

from mediagate.app import create_app
from mediagate.core.migrate import alembic_config, upgrade


async def test_healthz_and_readyz(client: httpx2.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}


async def test_readyz_refuses_a_database_behind_the_code(make_settings: Any) -> None:
    settings = make_settings()
    await asyncio.to_thread(upgrade, settings)
    await asyncio.to_thread(command.downgrade, alembic_config(settings), "-1")
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as c,
    ):
        response = await c.get("/readyz")
        assert response.status_code == 503 and "migrations" in response.json()["reason"]
        assert (await c.get("/healthz")).status_code == 200  # up, not ready
        await asyncio.to_thread(upgrade, settings)
        assert (await c.get("/readyz")).status_code == 200


async def test_readyz_refuses_an_unreachable_database(make_settings: Any) -> None:
    settings = make_settings(database_url="postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as c,
    ):
        response = await c.get("/readyz")
    assert response.status_code == 503 and response.json()["reason"].startswith("database")
