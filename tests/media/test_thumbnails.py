"""Thumbnails of result images: WebP, the longest side at most 384 px, the shape kept,
stored beside each result by the runner and served like any file."""

import io
from pathlib import Path

import httpx2
import pytest
from PIL import Image

from mediagate.app import build_runner
from mediagate.media.thumbnails import THUMBNAIL_SIDE, ThumbnailFailed, make_thumbnail
from tests.factories import KeyFactory, generation


def saved(path: Path, size: tuple[int, int], mode: str = "RGB", fmt: str = "PNG") -> Path:
    Image.new(mode, size, (200, 40, 40, 128)[: len(mode)]).save(path, format=fmt)
    return path


@pytest.mark.parametrize(
    ("size", "fmt", "expected"),
    [
        ((2000, 1000), "PNG", (384, 192)),
        ((768, 1365), "JPEG", (216, 384)),
        ((4096, 4096), "WEBP", (384, 384)),
        ((100, 50), "PNG", (100, 50)),  # already small: kept as it is
    ],
)
def test_the_longest_side_fits_and_the_shape_is_kept(
    tmp_path: Path, size: tuple[int, int], fmt: str, expected: tuple[int, int]
) -> None:
    thumb = make_thumbnail(saved(tmp_path / "result", size, fmt=fmt))
    with Image.open(io.BytesIO(thumb.data)) as image:
        assert image.format == "WEBP"
        assert image.size == expected == (thumb.width, thumb.height)
    assert max(expected) <= THUMBNAIL_SIDE


def test_transparency_is_kept(tmp_path: Path) -> None:
    thumb = make_thumbnail(saved(tmp_path / "result", (1000, 1000), mode="RGBA"))
    with Image.open(io.BytesIO(thumb.data)) as image:
        assert image.mode == "RGBA" and image.getpixel((10, 10))[3] == 128  # type: ignore[index]


def test_an_unreadable_image_says_so(tmp_path: Path) -> None:
    path = tmp_path / "result"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    with pytest.raises(ThumbnailFailed):
        make_thumbnail(path)


async def test_each_result_gets_a_thumbnail_in_the_task_object(
    app: object, client: httpx2.AsyncClient
) -> None:
    core = app.state.core  # type: ignore[attr-defined]
    key = await KeyFactory(core.db, core.settings)(credits=30)
    submitted = await client.post(
        "/api/v1/images/generations",
        json=generation(num_images=2, aspect_ratio="16:9"),
        headers=key.headers,
    )
    task_id = submitted.json()["data"]["task_id"]
    await build_runner(core.db, core.settings, core.catalog, app.state.components).drain()  # type: ignore[attr-defined]
    task = (await client.get(f"/api/v1/tasks/{task_id}", headers=key.headers)).json()["data"]
    assert task["status"] == "completed", task
    for image in task["output"]["images"]:
        full = await client.get(image["url"])
        small = await client.get(image["thumbnail"]["url"])
        assert full.headers["content-type"] == "image/png"
        assert small.status_code == 200 and small.headers["content-type"] == "image/webp"
        assert len(small.content) * 10 < len(full.content)
        with Image.open(io.BytesIO(small.content)) as thumb:
            assert thumb.format == "WEBP"
            assert thumb.size == (image["thumbnail"]["width"], image["thumbnail"]["height"])
            assert max(thumb.size) == THUMBNAIL_SIDE
            # the result's own shape
            assert abs(thumb.width / thumb.height - image["width"] / image["height"]) < 0.01
