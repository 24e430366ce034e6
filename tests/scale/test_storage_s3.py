"""Results in an S3-compatible bucket (a real moto server on loopback), served by redirect
to a presigned URL or proxied; uploads read back from the bucket, never over HTTP."""

import asyncio
import io
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import boto3
import httpx2
import pytest
from PIL import Image
from pydantic import ValidationError

from mediagate.app import build_runner, create_app
from mediagate.core.migrate import upgrade
from mediagate.core.settings import Settings
from mediagate.media.storage import S3Storage
from tests.factories import KeyFactory, generation
from tests.services import s3_credentials, s3_server, s3_storage

BUCKET = "mediagate-results"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with s3_server(BUCKET) as url:
        yield url


@pytest.fixture
def s3_settings(endpoint: str, make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    prefix = f"t{secrets.token_hex(4)}/"  # one bucket, a folder per test

    def make(**overrides: object) -> Settings:
        return make_settings(
            **s3_storage(endpoint, BUCKET, prefix),
            public_base_url="http://gateway.test",
            **overrides,
        )

    return make


def objects(endpoint: str, prefix: str) -> list[str]:
    listing = boto3.client("s3", **s3_credentials(endpoint)).list_objects_v2(
        Bucket=BUCKET, Prefix=prefix
    )
    return sorted(o["Key"] for o in listing.get("Contents", []))


async def test_put_get_and_presign(s3_settings: Callable[..., Settings], endpoint: str) -> None:
    settings = s3_settings()
    storage = S3Storage.from_settings(settings)
    key = "abcdefghijklmnop0123.png"
    await storage.put(key, b"\x89PNG\r\n\x1a\n fake bytes")
    assert await storage.get(key) == b"\x89PNG\r\n\x1a\n fake bytes"
    assert await storage.get("nothing-here-0123456.png") is None
    assert await storage.get("../../etc/passwd") is None
    assert objects(endpoint, settings.s3_prefix) == [f"{settings.s3_prefix}{key}"]
    url = await storage.public_url(key)
    assert url is not None and "X-Amz-Signature=" in url and "X-Amz-Expires=3600" in url
    async with httpx2.AsyncClient() as client:
        fetched = await client.get(url)
    assert fetched.status_code == 200 and fetched.content == b"\x89PNG\r\n\x1a\n fake bytes"
    assert fetched.headers["content-type"] == "image/png"
    assert await storage.public_url("nothing-here-0123456.png") is None
    with pytest.raises(ValueError, match="invalid storage key"):
        await storage.put("../escape.png", b"x")


async def test_delete_removes_the_object_and_a_missing_one_is_no_error(
    s3_settings: Callable[..., Settings], endpoint: str
) -> None:
    settings = s3_settings()
    storage = S3Storage.from_settings(settings)
    key, kept = "deletemeabcdefgh0123.png", "keepmeabcdefghij0123.png"
    for k in (key, kept):
        await storage.put(k, b"\x89PNG\r\n\x1a\n fake bytes")
    await storage.delete(key)
    await storage.delete(key)  # again: already gone, no error
    await storage.delete("../../etc/passwd")  # not a key of ours: nothing happens
    assert await storage.get(key) is None
    assert objects(endpoint, settings.s3_prefix) == [f"{settings.s3_prefix}{kept}"]


@pytest.fixture
async def s3_app(
    s3_settings: Callable[..., Settings], request: pytest.FixtureRequest
) -> AsyncIterator[Any]:
    settings = s3_settings(s3_serve=request.param)
    await asyncio.to_thread(upgrade, settings)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def s3_client(s3_app: Any) -> AsyncIterator[httpx2.AsyncClient]:
    transport = httpx2.ASGITransport(app=s3_app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        yield client


async def generate(app: Any, client: httpx2.AsyncClient) -> dict[str, Any]:
    core = app.state.core
    key = await KeyFactory(core.db, core.settings)(credits=30)
    submitted = await client.post(
        "/api/v1/images/generations", json=generation(num_images=2), headers=key.headers
    )
    task_id = submitted.json()["data"]["task_id"]
    await build_runner(core.db, core.settings, core.catalog, app.state.components).drain()
    task = (await client.get(f"/api/v1/tasks/{task_id}", headers=key.headers)).json()["data"]
    assert task["status"] == "completed", task
    return dict(task)


@pytest.mark.parametrize("s3_app", ["redirect"], indirect=True)
async def test_results_go_to_the_bucket_and_redirect_to_presigned_urls(
    s3_app: Any, s3_client: httpx2.AsyncClient, endpoint: str
) -> None:
    settings = s3_app.state.core.settings
    client = s3_client
    task = await generate(s3_app, client)
    urls = [image["url"] for image in task["output"]["images"]]
    thumbnails = [image["thumbnail"]["url"] for image in task["output"]["images"]]
    stored = objects(endpoint, settings.s3_prefix)
    names = {f"{settings.s3_prefix}{url.rsplit('/', 1)[1]}" for url in urls + thumbnails}
    assert set(stored) == names  # each result and its thumbnail
    assert not list(settings.files_dir.glob("*"))  # nothing on local disk
    async with httpx2.AsyncClient() as outside:
        for url in urls:
            answer = await client.get(url.removeprefix("http://gateway.test"))
            assert answer.status_code == 307
            assert answer.headers["location"].startswith(
                f"{endpoint}/{BUCKET}/{settings.s3_prefix}"
            )
            image = await outside.get(answer.headers["location"])
            assert image.status_code == 200
            assert Image.open(io.BytesIO(image.content)).size == (1024, 1024)
        missing = await client.get("/files/abcdefghijklmnopqrst.png")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found"


@pytest.mark.parametrize("s3_app", ["proxy"], indirect=True)
async def test_results_can_be_proxied(s3_app: Any, s3_client: httpx2.AsyncClient) -> None:
    client = s3_client
    task = await generate(s3_app, client)
    answer = await client.get(
        task["output"]["images"][0]["url"].removeprefix("http://gateway.test")
    )
    missing = await client.get("/files/abcdefghijklmnopqrst.png")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    assert "immutable" in answer.headers["cache-control"]
    assert Image.open(io.BytesIO(answer.content)).size == (1024, 1024)
    assert missing.status_code == 404


@pytest.mark.parametrize("s3_app", ["redirect"], indirect=True)
async def test_an_upload_is_read_back_from_the_bucket(s3_app: Any, endpoint: str) -> None:
    core = s3_app.state.core
    key = await KeyFactory(core.db, core.settings)(credits=30)
    blue = io.BytesIO()
    Image.new("RGB", (600, 600), (0, 0, 255)).save(blue, format="PNG")
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=s3_app), base_url="http://gateway.test"
    ) as client:
        upload = (
            await client.post(
                "/api/v1/uploads",
                content=blue.getvalue(),
                headers={**key.headers, "Content-Type": "image/png"},
            )
        ).json()["data"]
        assert objects(endpoint, core.settings.s3_prefix) == [
            f"{core.settings.s3_prefix}{upload['url'].rsplit('/', 1)[1]}"
        ]
        submitted = await client.post(
            "/api/v1/images/generations",
            json=generation(images=[upload["url"]]),
            headers=key.headers,
        )
        task_id = submitted.json()["data"]["task_id"]
        await build_runner(core.db, core.settings, core.catalog, s3_app.state.components).drain()
        task = (await client.get(f"/api/v1/tasks/{task_id}", headers=key.headers)).json()["data"]
    assert task["status"] == "completed", task


def test_s3_needs_a_bucket() -> None:
    with pytest.raises(ValidationError, match="MEDIAGATE_S3_BUCKET"):
        Settings(storage_backend="s3", secret_key="x" * 40)


POLYGLOT = b"<html><script>alert(document.domain)</script></html>"


async def upload_polyglot(app: Any, client: httpx2.AsyncClient) -> str:
    core = app.state.core
    key = await KeyFactory(core.db, core.settings)(credits=0)
    blue = io.BytesIO()
    Image.new("RGB", (600, 600), (0, 0, 255)).save(blue, format="PNG")
    answer = await client.post(
        "/api/v1/uploads",
        content=blue.getvalue() + POLYGLOT,
        headers={**key.headers, "Content-Type": "image/png"},
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["data"]["url"]).rsplit("/", 1)[1]


@pytest.mark.parametrize("s3_app", ["proxy"], indirect=True)
async def test_finding_10_proxied_files_carry_the_hardening_headers(
    s3_app: Any, s3_client: httpx2.AsyncClient
) -> None:
    name = await upload_polyglot(s3_app, s3_client)
    served = await s3_client.get(f"/files/{name}")
    assert served.status_code == 200 and served.content.endswith(POLYGLOT)
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-security-policy"] == "default-src 'none'; sandbox"


@pytest.mark.parametrize("s3_app", ["redirect"], indirect=True)
async def test_finding_10_bucket_objects_are_typed_by_their_bytes(
    s3_app: Any, s3_client: httpx2.AsyncClient, endpoint: str
) -> None:
    name = await upload_polyglot(s3_app, s3_client)
    storage = s3_app.state.storage
    await storage.put("abcdefghijklmnopqrst.png", POLYGLOT)  # not an image, whatever its name
    client = boto3.client("s3", **s3_credentials(endpoint))
    image = client.head_object(Bucket=BUCKET, Key=f"{storage.prefix}{name}")
    other = client.head_object(Bucket=BUCKET, Key=f"{storage.prefix}abcdefghijklmnopqrst.png")
    assert (image["ContentType"], image.get("ContentDisposition")) == ("image/png", "inline")
    assert (other["ContentType"], other.get("ContentDisposition")) == (
        "application/octet-stream",
        "attachment",
    )


VIDEO_KEY = "abcdefghijklmnopqrstuvwx.mp4"
VIDEO = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40_000  # ~10 MB: a multipart upload


async def stored_video(app: Any, tmp_path: Any) -> int:
    storage = app.state.storage
    assert isinstance(storage, S3Storage)
    scratch = tmp_path / "video.mp4"
    scratch.write_bytes(VIDEO)
    await storage.put_file(VIDEO_KEY, scratch, "video/mp4")
    return len(VIDEO)


@pytest.mark.parametrize("s3_app", ["proxy"], indirect=True)
async def test_proxied_files_answer_range_requests(
    s3_app: Any, s3_client: httpx2.AsyncClient, tmp_path: Any
) -> None:
    size = await stored_video(s3_app, tmp_path)
    whole = await s3_client.get(f"/files/{VIDEO_KEY}")
    assert whole.status_code == 200 and whole.content == VIDEO
    assert whole.headers["content-type"] == "video/mp4"
    assert whole.headers["accept-ranges"] == "bytes"
    for header, part, content_range in (
        ("bytes=0-99", VIDEO[:100], f"bytes 0-99/{size}"),
        ("bytes=5000000-", VIDEO[5_000_000:], f"bytes 5000000-{size - 1}/{size}"),
        ("bytes=-50", VIDEO[-50:], f"bytes {size - 50}-{size - 1}/{size}"),
    ):
        answer = await s3_client.get(f"/files/{VIDEO_KEY}", headers={"Range": header})
        assert answer.status_code == 206, header
        assert answer.content == part, header
        assert answer.headers["content-range"] == content_range
    beyond = await s3_client.get(f"/files/{VIDEO_KEY}", headers={"Range": f"bytes={size}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{size}"


@pytest.mark.parametrize("s3_app", ["redirect"], indirect=True)
async def test_presigned_files_answer_range_requests(
    s3_app: Any, s3_client: httpx2.AsyncClient, tmp_path: Any
) -> None:
    await stored_video(s3_app, tmp_path)
    answer = await s3_client.get(f"/files/{VIDEO_KEY}")
    assert answer.status_code == 307
    async with httpx2.AsyncClient() as outside:
        part = await outside.get(answer.headers["location"], headers={"Range": "bytes=16-31"})
    assert part.status_code == 206 and part.content == VIDEO[16:32]
    assert part.headers["content-type"] == "video/mp4"
