"""A task's own page: what was asked, what happened, and the curl that asks it again; the
gallery leads to it, and nobody else's task can be seen."""

import html
import json
import re
import shlex
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from markupsafe import escape

from mediagate.app import build_runner
from tests.factories import generation
from tests.web.helpers import create_key, page_token, sign_up

BROWSER = "text/html,application/xhtml+xml,*/*;q=0.8"


@pytest.fixture
def drain(app: Any) -> Callable[[], Any]:
    core = app.state.core

    async def run() -> None:
        await build_runner(core.db, core.settings, core.catalog, app.state.components).drain()

    return run


async def submit(client: httpx2.AsyncClient, key: str, **fields: object) -> str:
    answer = await client.post(
        "/api/v1/images/generations",
        json=generation(**fields),
        headers={"Authorization": f"Bearer {key}"},
    )
    assert answer.status_code == 200, answer.text
    task_id: str = answer.json()["data"]["task_id"]
    return task_id


async def test_a_completed_task_shows_prompt_params_cost_images_and_its_curl(
    client: httpx2.AsyncClient, drain: Callable[[], Any]
) -> None:
    await sign_up(client, "detail@example.com")
    key = await create_key(client)
    prompt = "A fox's den, in the style of <<<image_1>>>"
    task_id = await submit(client, key, prompt=prompt, aspect_ratio="16:9", num_images=2)
    await drain()
    answer = await client.get(f"/tasks/{task_id}")
    assert answer.status_code == 200
    page = answer.text
    assert str(escape(prompt)) in page
    assert re.search(r"<span[^>]*data-status>completed</span>", page)
    api = await client.get(f"/api/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {key}"})
    assert f"data-credits>{api.json()['data']['credits']}<" in page
    assert re.search(
        r'<tr data-param="aspect_ratio"><td><code>aspect_ratio</code></td><td>16:9', page
    )
    assert '<tr data-param="num_images"><td><code>num_images</code></td><td><code>2</code>' in page
    images = re.findall(r'<img src="(http://gateway\.test/files/[^"]+)"', page)
    assert len(images) == 2
    assert (await client.get(images[0])).headers["content-type"] == "image/png"

    # The curl, unescaped as a shell would read it, asks for the same again.
    curl = re.search(r'<code id="task-curl">(.*?)</code>', page, re.S)
    assert curl
    words = shlex.split(html.unescape(curl.group(1)).replace("\\\n", " "))
    assert words[1] == "http://gateway.test/api/v1/images/generations"
    body = json.loads(words[words.index("-d") + 1])
    assert body["model"] == "kling-image-o1" and body["prompt"] == prompt
    assert body["aspect_ratio"] == "16:9" and body["num_images"] == 2
    again = await client.post(words[1], json=body, headers={"Authorization": f"Bearer {key}"})
    assert again.status_code == 200, again.text

    gallery = (await client.get("/tasks")).text
    assert f'href="/tasks/{task_id}"' in gallery and str(escape(prompt)) in gallery


async def test_a_failed_task_shows_its_error_and_costs_nothing(
    client: httpx2.AsyncClient, drain: Callable[[], Any]
) -> None:
    await sign_up(client, "failed@example.com")
    key = await create_key(client)
    task_id = await submit(client, key, prompt="no luck [sandbox:fail]")
    await drain()
    page = (await client.get(f"/tasks/{task_id}")).text
    assert re.search(r"<span[^>]*data-status>failed</span>", page)
    assert re.search(r"data-credits>0<", page)
    error = re.search(r'<p class="error" role="alert" data-error>(.*?)</p>', page, re.S)
    assert error and ":" in error.group(1)
    assert "<img " not in page


async def test_another_accounts_task_is_a_404_page(
    client: httpx2.AsyncClient, drain: Callable[[], Any]
) -> None:
    await sign_up(client, "owner@example.com")
    task_id = await submit(client, await create_key(client), prompt="mine")
    client.cookies.clear()
    await sign_up(client, "snoop@example.com")
    for path in (f"/tasks/{task_id}", "/tasks/task_does_not_exist"):
        answer = await client.get(path, headers={"Accept": BROWSER})
        assert answer.status_code == 404 and "<h1>Page not found</h1>" in answer.text
        assert "mine" not in answer.text


async def test_the_task_page_asks_a_visitor_to_sign_in(client: httpx2.AsyncClient) -> None:
    answer = await client.get("/tasks/task_anything")
    assert answer.status_code == 303 and answer.headers["location"] == "/login"


async def test_a_video_task_plays_on_its_page_with_its_poster(
    client: httpx2.AsyncClient, drain: Callable[[], Any]
) -> None:
    await sign_up(client, "video-page@example.com")
    key = await create_key(client)
    answer = await client.post(
        "/api/v1/videos/generations",
        json={
            "model": "seedance-1-pro",
            "prompt": "a paper boat",
            "duration": 2,
            "resolution": "480p",
        },
        headers={"Authorization": f"Bearer {key}"},
    )
    assert answer.status_code == 200, answer.text
    task_id = answer.json()["data"]["task_id"]
    await drain()
    api = await client.get(f"/api/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {key}"})
    (video,) = api.json()["data"]["output"]["videos"]
    page = (await client.get(f"/tasks/{task_id}")).text
    player = re.search(r"<video ([^>]*)>", page)
    assert player, page
    assert "controls" in player.group(1)
    assert f'src="{video["url"]}"' in player.group(1)
    assert f'poster="{video["poster"]["url"]}"' in player.group(1)
    assert "/api/v1/videos/generations" in page  # its curl goes to the video door


async def test_the_cancel_button_cancels_an_unfinished_task_and_explains_a_finished_one(
    client: httpx2.AsyncClient, drain: Callable[[], Any]
) -> None:
    await sign_up(client, "cancel@example.com")
    key = await create_key(client)
    waiting = await submit(client, key, prompt="never started")
    page = (await client.get(f"/tasks/{waiting}")).text
    assert "data-cancel>" in page
    answer = await client.post(f"/tasks/{waiting}/cancel", data={"csrf_token": page_token(page)})
    assert answer.status_code == 303, answer.text
    page = (await client.get(f"/tasks/{waiting}")).text
    assert re.search(r"<span[^>]*data-status>cancelled</span>", page)
    assert "data-credits>0<" in page and "data-cancel>" not in page

    done = await submit(client, key, prompt="finished first")
    page = (await client.get(f"/tasks/{done}")).text
    await drain()
    answer = await client.post(f"/tasks/{done}/cancel", data={"csrf_token": page_token(page)})
    assert answer.status_code == 200
    assert re.search(r"data-cancel-error>[^<]*already completed", answer.text)
    forged = await client.post(f"/tasks/{waiting}/cancel", data={"csrf_token": "forged"})
    assert forged.status_code == 403
