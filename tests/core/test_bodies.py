"""Request bodies through the real ASGI app: every reader streams against its cap and
answers 413 as soon as it is passed; malformed JSON is a 400, never a 500."""

from collections.abc import AsyncIterator

import httpx2
import pytest

from mediagate.core.http import JSON_MAX_DEPTH
from tests.factories import KeyFactory

MiB = 1024 * 1024


class Flood:
    """A chunked request body of `total` bytes that counts how much the server pulled."""

    def __init__(self, total: int, chunk: bytes = b"a" * 64 * 1024) -> None:
        self.total = total
        self.chunk = chunk
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.sent < self.total:
            self.sent += len(self.chunk)
            yield self.chunk


@pytest.mark.parametrize(
    ("path", "content_type", "cap"),
    [
        ("/login", "application/x-www-form-urlencoded", 16 * 1024),
        ("/signup", "application/x-www-form-urlencoded", 16 * 1024),
        ("/api/v1/images/generations", "application/json", 64 * 1024),
        ("/api/v1/uploads", "image/png", 10_000_000),  # the raw image itself
    ],
)
async def test_finding_2_a_chunked_body_is_cut_off_at_its_cap_with_413(
    client: httpx2.AsyncClient, keys: KeyFactory, path: str, content_type: str, cap: int
) -> None:
    key = await keys()
    flood = Flood(40 * MiB)
    response = await client.post(
        path, content=flood, headers={**key.headers, "Content-Type": content_type}
    )
    assert response.status_code == 413, response.text
    message = response.json()["error"]["message"]
    assert message.startswith(f"Request body is larger than {cap} bytes")
    assert response.headers["connection"] == "close"
    assert flood.sent <= cap + 2 * len(flood.chunk)  # read no further than the cap


@pytest.mark.parametrize("path", ["/login", "/api/v1/images/generations", "/api/v1/uploads"])
async def test_finding_2_a_declared_length_over_the_cap_is_refused_before_reading(
    client: httpx2.AsyncClient, keys: KeyFactory, path: str
) -> None:
    key = await keys()
    flood = Flood(20 * MiB)
    response = await client.post(
        path,
        content=flood,
        headers={**key.headers, "Content-Length": str(300 * MiB), "Content-Type": "text/plain"},
    )
    assert response.status_code == 413
    assert "larger than" in response.json()["error"]["message"]
    assert flood.sent <= len(flood.chunk)


async def test_a_small_form_still_gets_through(client: httpx2.AsyncClient) -> None:
    response = await client.post("/login", data={"email": "a@example.com", "password": "x"})
    assert response.status_code == 403  # no CSRF token: read and judged, not refused for size
    assert "CSRF" in response.json()["error"]["message"]


def nested(depth: int) -> bytes:
    return b'{"model": "kling-image-o1", "prompt": "x", "x": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (nested(30_000), f"nested more than {JSON_MAX_DEPTH} levels deep"),
        (nested(JSON_MAX_DEPTH + 1), f"nested more than {JSON_MAX_DEPTH} levels deep"),
        (b'{"model": "kling-image-o1", "n": ' + b"9" * 5000 + b"}", "not acceptable JSON"),
        (b'{"model": "kling-image-o1", "\\udc00": 1}', "not valid Unicode"),
        (b'{"model": "kling-\\ud800"}', "model is not valid Unicode"),
    ],
)
async def test_finding_7_malformed_json_is_a_400(
    client: httpx2.AsyncClient, keys: KeyFactory, body: bytes, message: str
) -> None:
    key = await keys()
    response = await client.post(
        "/api/v1/images/generations",
        content=body,
        headers={**key.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"model": "kling-image-o1", "prompt": "a\\ud800b"}', "prompt"),
        (
            b'{"model": "kling-image-o1", "prompt": "fox", '
            b'"callback_url": "https://example.com/\\udfff"}',
            "callback_url",
        ),
        (
            b'{"model": "kling-image-o1", "prompt": "fox", "images": ["https://a.b/\\ud83d"]}',
            "images",
        ),
    ],
)
async def test_finding_7_a_lone_surrogate_is_refused_naming_the_param(
    client: httpx2.AsyncClient, keys: KeyFactory, body: bytes, param: str
) -> None:
    key = await keys(credits=10)
    response = await client.post(
        "/api/v1/images/generations",
        content=body,
        headers={**key.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert "lone surrogate" in response.json()["error"]["message"]
    account = await client.get("/api/v1/account", headers=key.headers)
    assert account.json()["data"]["credits"] == {"available": 10, "held": 0, "posted": 10}


async def test_deep_but_allowed_json_and_real_unicode_still_pass(
    client: httpx2.AsyncClient, keys: KeyFactory
) -> None:
    key = await keys(credits=10)
    response = await client.post(
        "/api/v1/images/generations",
        json={"model": "kling-image-o1", "prompt": "un renard roux 🦊 dans la neige"},
        headers=key.headers,
    )
    assert response.status_code == 200, response.text
