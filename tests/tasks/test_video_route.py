"""POST /api/v1/videos/generations in process: the envelope, the endpoint check both
ways, holds and the exact charge, output.videos with a poster, idempotency."""

import io
from pathlib import Path
from typing import Any

import httpx2
import pytest
from PIL import Image, ImageChops, ImageStat

from mediagate.core.db import Database
from mediagate.ledger import service as ledger
from mediagate.media.videos import poster, probe_video
from tests.factories import KeyFactory, MadeKey
from tests.providers.test_sandbox import own_file
from tests.runner.test_runner import fetch, make_runner, transfers

VIDEOS = "/api/v1/videos/generations"
MODEL = "seedance-1-pro"


def video_body(**fields: object) -> dict[str, object]:
    return {"model": MODEL, "prompt": "a fox running through snow", **fields}


async def submit_video(client: httpx2.AsyncClient, key: MadeKey, **fields: object) -> str:
    response = await client.post(VIDEOS, json=video_body(**fields), headers=key.headers)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["status"] == "IN_PROGRESS"
    return str(response.json()["data"]["task_id"])


async def download(client: httpx2.AsyncClient, url: str, tmp_path: Path, name: str) -> Path:
    response = await client.get(url)
    assert response.status_code == 200
    path = tmp_path / name
    path.write_bytes(response.content)
    return path


async def test_text_to_video_completes_with_a_playable_mp4_a_poster_and_the_exact_charge(
    app: Any, client: httpx2.AsyncClient, keys: KeyFactory, db: Database, tmp_path: Path
) -> None:
    key = await keys(credits=100)
    task_id = await submit_video(client, key, duration=4, resolution="720p", aspect_ratio="9:16")
    async with db.read() as s:
        # 5 credits per second at 720p, for 4 s, held at once
        assert await ledger.balance(s, key.account_id, "test") == ledger.Balance(100, 20)
    await make_runner(app).drain()
    task = await fetch(client, key, task_id)
    assert task["status"] == "completed", task
    assert task["credits"] == 20 and task["output"]["images"] == []
    [video] = task["output"]["videos"]
    assert video["content_type"] == "video/mp4"
    assert video["duration_s"] == pytest.approx(4, abs=0.1)
    assert (video["width"], video["height"]) == (360, 640)  # 9:16, long side capped at 640
    response = await client.get(video["url"])
    assert response.headers["content-type"] == "video/mp4"
    path = tmp_path / "video.mp4"
    path.write_bytes(response.content)
    info = probe_video(path)
    assert (info.width, info.height, info.codec) == (360, 640, "h264")
    assert info.duration_s == pytest.approx(4, abs=0.1)
    still = await client.get(video["poster"]["url"])
    assert still.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(still.content)) as image:
        assert image.size == (video["poster"]["width"], video["poster"]["height"]) == (360, 640)
    assert await transfers(db, task_id) == ["hold", "capture"]
    async with db.read() as s:
        assert await ledger.balance(s, key.account_id, "test") == ledger.Balance(80, 0)


async def test_image_to_video_starts_from_the_reference(
    app: Any, client: httpx2.AsyncClient, keys: KeyFactory, tmp_path: Path
) -> None:
    key = await keys(credits=100)
    out = io.BytesIO()
    reference = Image.new("RGB", (800, 600), (220, 40, 40))
    reference.paste((30, 60, 200), (0, 300, 800, 600))  # red over blue: orientation shows
    reference.save(out, format="PNG")
    url = await own_file(app, out.getvalue())
    task_id = await submit_video(
        client, key, type="image-to-video", images=[url], duration=2, resolution="480p"
    )
    await make_runner(app).drain()
    task = await fetch(client, key, task_id)
    assert task["status"] == "completed", task
    assert task["credits"] == 4  # 2 credits per second at 480p
    [video] = task["output"]["videos"]
    # auto: the ratio nearest to the reference's 4:3, at 480p, scaled to a 640 long side
    assert (video["width"], video["height"]) == (640, 480)
    path = await download(client, video["url"], tmp_path, "i2v.mp4")
    first = Image.open(io.BytesIO(poster(path, probe_video(path))))
    expected = reference.resize(first.size)
    difference = ImageStat.Stat(ImageChops.difference(first, expected).convert("L")).mean[0]
    assert difference < 20, difference  # the SANDBOX text and the marker cover a little


@pytest.mark.parametrize(
    ("route", "body", "right"),
    [
        (VIDEOS, {"model": "kling-image-o1", "prompt": "x"}, "/api/v1/images/generations"),
        ("/api/v1/images/generations", video_body(), VIDEOS),
    ],
)
async def test_a_model_on_the_other_route_is_a_400_naming_the_right_one(
    client: httpx2.AsyncClient, keys: KeyFactory, db: Database, route: str, body: Any, right: str
) -> None:
    key = await keys(credits=100)
    response = await client.post(route, json=body, headers=key.headers)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "model"
    assert right in error["message"]
    async with db.read() as s:
        assert await ledger.balance(s, key.account_id, "test") == ledger.Balance(100, 0)


@pytest.mark.parametrize(
    ("fields", "param", "message"),
    [
        ({"duration": 13}, "duration", "duration must be one of: 2, 3, 4, 5, 6, 7, 8"),
        ({"duration": "5"}, "duration", "duration must be an integer"),
        ({"camera_fixed": "yes"}, "camera_fixed", "camera_fixed must be true or false"),
        ({"resolution": "4k"}, "resolution", "resolution must be one of: 480p, 720p, 1080p"),
        ({"images": ["https://example.com/a.png"]}, "images", "at most 0 item(s)"),
        ({"type": "image-to-video"}, "images", "at least 1 item(s)"),
        ({"aspect_ratio": "auto"}, "aspect_ratio", "aspect_ratio must be one of"),
    ],
)
async def test_video_params_are_checked_before_any_hold(
    client: httpx2.AsyncClient,
    keys: KeyFactory,
    fields: dict[str, Any],
    param: str,
    message: str,
) -> None:
    key = await keys(credits=100)
    response = await client.post(VIDEOS, json=video_body(**fields), headers=key.headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert message in response.json()["message"]


async def test_an_idempotent_retry_on_the_video_route_takes_no_second_hold(
    client: httpx2.AsyncClient, keys: KeyFactory, db: Database
) -> None:
    key = await keys(credits=100)
    headers = {**key.headers, "Idempotency-Key": "video-1"}
    first = await client.post(VIDEOS, json=video_body(), headers=headers)
    again = await client.post(VIDEOS, json=video_body(), headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json()["data"]["task_id"] == again.json()["data"]["task_id"]
    async with db.read() as s:
        # 1080p (the default) x 5 s (the default) at 12 credits per second
        assert await ledger.balance(s, key.account_id, "test") == ledger.Balance(100, 60)
    other = await client.post(VIDEOS, json=video_body(duration=2), headers=headers)
    assert other.status_code == 422


async def test_openapi_lists_the_video_route_with_the_video_models(
    client: httpx2.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"][VIDEOS]["post"]
    schemas = operation["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    by_model = {s["properties"]["model"]["const"]: s for s in schemas}
    assert {MODEL, "kling-v2.5-turbo", "veo-3.1-fast"} <= set(by_model)
    assert "kling-image-o1" not in by_model
    schema = by_model[MODEL]
    assert schema["properties"]["duration"]["enum"] == list(range(2, 13))
    assert schema["properties"]["camera_fixed"] == {
        "type": "boolean",
        "description": schema["properties"]["camera_fixed"]["description"],
        "default": False,
    }
    images = spec["paths"]["/api/v1/images/generations"]["post"]["requestBody"]
    models = [
        s["properties"]["model"]["const"]
        for s in images["content"]["application/json"]["schema"]["oneOf"]
    ]
    assert MODEL not in models and "kling-image-o1" in models
