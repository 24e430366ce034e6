"""/docs from our own origin (finding 12): Swagger UI's files come from the installed
package, the page runs under the dashboard's CSP, and in a real browser nothing leaves
our origin."""

import re
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.e2e.procs import environment, free_port, process, wait_for_http
from tests.services import unavailable
from tests.web.test_browser import CHROMIUM


async def test_docs_page_references_only_our_origin(client: httpx2.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    urls = re.findall(r'(?:src|href)="([^"]*)"', page.text)
    assert urls and all(u.startswith("/") and not u.startswith("//") for u in urls), urls
    assert "<script>" not in page.text  # every script is a file: CSP allows no inline one
    for url in urls:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert asset.content, url
    assert (await client.get("/openapi.json")).status_code == 200


async def test_only_the_pages_assets_are_served_and_redoc_is_gone(
    client: httpx2.AsyncClient,
) -> None:
    assert (await client.get("/docs/assets/index.html")).status_code == 404
    assert (await client.get("/docs/assets/..%2Fswagger-initializer.js")).status_code == 404
    assert (await client.get("/redoc")).status_code == 404


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not Path(CHROMIUM).exists():
        unavailable("Debian's chromium is not installed (apt-get install chromium)")
    folder = tmp_path_factory.mktemp("docs")
    env = environment(folder / "data")
    port = free_port()
    log = folder / "serve.log"
    with process(env, "serve", "--port", str(port), "--no-runner", log=log) as server:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(base, server, log)
        yield base


@pytest.mark.e2e
@pytest.mark.slow
def test_docs_render_in_a_real_browser_without_leaving_our_origin(served: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    requests: list[str] = []
    refused: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: refused.append(m.text) if m.type == "error" else None)
            page.goto(f"{served}/docs")
            # Rendered: the operations of our schema are on the page.
            expect(page.get_by_text("/api/v1/images/generations").first).to_be_visible()
            expect(page.get_by_text("/api/v1/uploads").first).to_be_visible()
        finally:
            browser.close()
    assert all(u.startswith(served) or u.startswith("data:") for u in requests), requests
    assert not refused, refused  # a CSP refusal is logged as a console error
