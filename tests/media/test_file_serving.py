"""Stored files are untrusted bytes: served so no browser ever runs them (finding 10)."""

from collections.abc import AsyncIterator, Callable

import httpx2
import pytest

from mediagate.app import build_runner, create_app
from mediagate.core.migrate import upgrade
from mediagate.core.settings import Settings
from tests.factories import KeyFactory, generation
from tests.servers import make_image

HTML = b"<html><body><script>document.title='pwned'</script></body></html>"
HARDENED = {
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; sandbox",
}


def polyglot() -> bytes:
    """A real PNG (it passes every upload check) that also holds an HTML page."""
    return make_image(600, 600, "png") + HTML


async def upload(client: httpx2.AsyncClient, keys: KeyFactory, data: bytes) -> dict[str, object]:
    key = await keys(credits=0)
    answer = await client.post(
        "/api/v1/uploads", files={"file": ("x.png", data, "image/png")}, headers=key.headers
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["data"])


async def test_finding_10_a_png_html_polyglot_upload_is_served_as_an_inert_image(
    client: httpx2.AsyncClient, keys: KeyFactory
) -> None:
    data = polyglot()
    url = str((await upload(client, keys, data))["url"])
    served = await client.get(url.removeprefix("http://gateway.test"))
    assert served.status_code == 200 and served.content == data
    assert served.headers["content-type"] == "image/png"
    assert {k: served.headers.get(k) for k in HARDENED} == HARDENED
    assert served.headers["content-disposition"] == "inline"


async def test_finding_10_stored_bytes_that_are_not_an_image_are_only_a_download(
    client: httpx2.AsyncClient, settings: Settings
) -> None:
    # Whatever wrote it (a provider's answer, an older version), a `.png` key holding HTML
    # is typed by its bytes, not its name.
    name = "abcdefghijklmnopqrst.png"
    (settings.files_dir / name).write_bytes(HTML)
    served = await client.get(f"/files/{name}")
    assert served.status_code == 200 and served.content == HTML
    assert served.headers["content-type"] == "application/octet-stream"
    assert served.headers["content-disposition"] == "attachment"
    assert {k: served.headers.get(k) for k in HARDENED} == HARDENED


@pytest.fixture
def files_origin(make_settings: Callable[..., Settings]) -> Settings:
    settings = make_settings(
        public_base_url="https://gateway.example", files_base_url="https://files.example/"
    )
    upgrade(settings)
    return settings


@pytest.fixture
async def files_origin_app(files_origin: Settings) -> AsyncIterator[object]:
    app = create_app(files_origin)
    async with app.router.lifespan_context(app):
        yield app


async def test_file_urls_use_the_separate_files_origin_when_configured(
    files_origin_app: object, files_origin: Settings
) -> None:
    key = await KeyFactory(files_origin_app.state.core.db, files_origin)(credits=30)  # type: ignore[attr-defined]
    transport = httpx2.ASGITransport(app=files_origin_app)  # type: ignore[arg-type]
    async with httpx2.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        answer = await client.post(
            "/api/v1/uploads",
            content=make_image(600, 600, "png"),
            headers={**key.headers, "Content-Type": "image/png"},
        )
        url = answer.json()["data"]["url"]
        assert url.startswith("https://files.example/files/up_"), url
        # The same server answers on that origin (the operator routes it here).
        assert (await client.get(url.removeprefix("https://files.example"))).status_code == 200
        # An upload's URL on the files origin is ours: read from storage, never fetched.
        submitted = await client.post(
            "/api/v1/images/generations", json=generation(images=[url]), headers=key.headers
        )
        task_id = submitted.json()["data"]["task_id"]
        core = files_origin_app.state.core  # type: ignore[attr-defined]
        components = files_origin_app.state.components  # type: ignore[attr-defined]
        await build_runner(core.db, files_origin, core.catalog, components).drain()
        task = (await client.get(f"/api/v1/tasks/{task_id}", headers=key.headers)).json()
    assert task["data"]["status"] == "completed", task
    assert task["data"]["output"]["images"][0]["url"].startswith("https://files.example/files/")
