"""The gallery (/tasks and the dashboard's recent tasks) shows thumbnails and video
posters, each linking to the full file; results from before thumbnails show the full
image; expired results say so; prompts wrap between words."""

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import update

from mediagate.app import build_runner
from mediagate.core.clock import utcnow
from mediagate.media.retention import RetentionSweeper
from mediagate.tasks.models import Task
from tests.factories import generation
from tests.web.helpers import create_key, sign_up

LINKED_IMG = re.compile(r'<a href="([^"]+)"[^>]*><img src="([^"]+)"[^>]*data-thumb="(\w+)"')
CSS = Path(__file__).parents[2] / "mediagate" / "web" / "static" / "app.css"


@pytest.fixture
def drain(app: Any) -> Callable[[], Any]:
    core = app.state.core

    async def run() -> None:
        await build_runner(core.db, core.settings, core.catalog, app.state.components).drain()

    return run


async def completed_task(client: httpx2.AsyncClient, key: str, drain: Any) -> dict[str, Any]:
    answer = await client.post(
        "/api/v1/images/generations",
        json=generation(num_images=2, prompt="a fox in a supercalifragilistic meadow"),
        headers={"Authorization": f"Bearer {key}"},
    )
    await drain()
    task_id = answer.json()["data"]["task_id"]
    got = await client.get(f"/api/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {key}"})
    return dict(got.json()["data"])


async def test_the_gallery_shows_thumbnails_linked_to_the_full_files(
    app: Any, client: httpx2.AsyncClient, drain: Any
) -> None:
    await sign_up(client, "gallery@example.com")
    key = await create_key(client)
    task = await completed_task(client, key, drain)
    images = task["output"]["images"]
    expected = [(i["url"], i["thumbnail"]["url"], "small") for i in images]
    for path in ("/tasks", "/dashboard"):
        page = (await client.get(path)).text
        assert LINKED_IMG.findall(page) == expected, path
        for _, thumb_url, _ in expected:
            assert (await client.get(thumb_url)).headers["content-type"] == "image/webp"
        assert f'href="/tasks/{task["task_id"]}"' in page

    # A task stored before thumbnails existed shows its full images.
    async with app.state.core.db.write() as session:
        old = [{k: v for k, v in i.items() if k != "thumb"} for i in await _images(app, task)]
        await session.execute(update(Task).where(Task.id == task["task_id"]).values(images=old))
    page = (await client.get("/tasks")).text
    assert LINKED_IMG.findall(page) == [(i["url"], i["url"], "full") for i in images]


async def _images(app: Any, task: dict[str, Any]) -> list[dict[str, Any]]:
    async with app.state.core.db.read() as session:
        row = await session.get_one(Task, task["task_id"])
    return list(row.images or [])


async def test_expired_results_are_shown_as_expired(
    app: Any, client: httpx2.AsyncClient, drain: Any
) -> None:
    await sign_up(client, "expired@example.com")
    key = await create_key(client)
    task = await completed_task(client, key, drain)
    core = app.state.core
    sweeper = RetentionSweeper(core.db, app.state.storage, core.settings)
    assert (await sweeper.run_once(utcnow() + timedelta(days=31))).tasks == 1
    gallery = (await client.get("/tasks")).text
    assert LINKED_IMG.findall(gallery) == []
    assert gallery.count("expired</span>") == 2
    detail = (await client.get(f"/tasks/{task['task_id']}")).text
    assert detail.count("data-expired>") == 2 and "/files/" not in detail


def test_prompts_wrap_between_words_and_break_only_overlong_tokens() -> None:
    css = CSS.read_text()
    rule = re.search(r"\.task \.prompt \{([^}]*)\}", css)
    assert rule, "no rule for gallery prompts"
    body = rule.group(1)
    assert "word-break: normal" in body and "overflow-wrap: anywhere" in body
    assert "break-all" not in body
