"""A result over its cap (MEDIAGATE_RESULT_MAX_BYTES for images, MEDIAGATE_VIDEO_MAX_BYTES
for videos) fails the task with the cap in the message: nothing charged, nothing kept."""

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import pytest

from mediagate.app import build_runner, create_app
from mediagate.core.migrate import upgrade
from mediagate.core.settings import Settings
from tests.factories import KeyFactory


@pytest.fixture
async def tight_app(make_settings: Callable[..., Settings]) -> AsyncIterator[Any]:
    settings = make_settings(result_max_bytes=2_000, video_max_bytes=3_000)
    await asyncio.to_thread(upgrade, settings)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.mark.parametrize(
    ("route", "body", "cap"),
    [
        ("images", {"model": "kling-image-o1", "prompt": "a fox"}, "2,000"),
        (
            "videos",
            {"model": "seedance-1-pro", "prompt": "a fox", "duration": 2, "resolution": "480p"},
            "3,000",
        ),
    ],
)
async def test_a_result_over_its_cap_fails_the_task_uncharged(
    tight_app: Any, route: str, body: dict[str, Any], cap: str
) -> None:
    core = tight_app.state.core
    key = await KeyFactory(core.db, core.settings)(credits=100)
    transport = httpx2.ASGITransport(app=tight_app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://t") as client:
        created = await client.post(f"/api/v1/{route}/generations", json=body, headers=key.headers)
        assert created.status_code == 200, created.text
        await build_runner(core.db, core.settings, core.catalog, tight_app.state.components).drain()
        task_id = created.json()["data"]["task_id"]
        task = (await client.get(f"/api/v1/tasks/{task_id}", headers=key.headers)).json()["data"]
        account = (await client.get("/api/v1/account", headers=key.headers)).json()["data"]
    assert task["status"] == "failed"
    assert f"over this gateway's cap of {cap} bytes" in task["error"]["message"]
    assert account["credits"] == {"available": 100, "held": 0, "posted": 100}
    assert not list(core.settings.files_dir.glob("*.*"))
    assert not list((core.settings.data_dir / "scratch").glob("*"))
