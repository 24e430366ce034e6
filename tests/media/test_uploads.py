"""Multipart uploads through the real ASGI app: parsed as they arrive, bounded in parts
and headers, refused early with a 400 that says what was wrong, and nothing stored."""

from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from mediagate.core.settings import Settings
from mediagate.media.uploads import MAX_PARTS
from tests.factories import KeyFactory
from tests.servers import make_image


def tiny_parts(count: int, boundary: str = "b") -> bytes:
    part = f'--{boundary}\r\nContent-Disposition: form-data; name="x"\r\n\r\ny\r\n'.encode()
    return part * count + f"--{boundary}--\r\n".encode()


def nested_multipart(depth: int) -> bytes:
    """A `file` part holding a multipart body holding one, `depth` levels down."""
    body = b"innermost"
    for level in reversed(range(depth)):
        inner = f"b{level + 1}"
        body = (
            f'--b{level}\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n'
            f"Content-Type: multipart/form-data; boundary={inner}\r\n\r\n".encode()
            + body
            + f"\r\n--b{level}--\r\n".encode()
        )
    return body


class Sent:
    """A body sent in 16 KiB chunks, counting how much the server pulled."""

    def __init__(self, body: bytes, chunk: int = 16 * 1024) -> None:
        self.body = body
        self.chunk = chunk
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.body), self.chunk):
            piece = self.body[start : start + self.chunk]
            self.sent += len(piece)
            yield piece


def stored(settings: Settings) -> list[Path]:
    return [p for p in settings.files_dir.rglob("*") if p.is_file()]


@pytest.mark.parametrize(
    ("body", "boundary", "message"),
    [
        (tiny_parts(150_000), "b", f"Too many multipart parts (at most {MAX_PARTS})"),
        (b"\r\n" * 1_000_000, "b", "no part within its first 1024 bytes"),
        (b"\n" * 2_000_000, "b", "no part within its first 1024 bytes"),
    ],
)
async def test_finding_1_a_pathological_multipart_body_is_refused_at_once(
    client: httpx2.AsyncClient,
    keys: KeyFactory,
    settings: Settings,
    body: bytes,
    boundary: str,
    message: str,
) -> None:
    key = await keys()
    sent = Sent(body)
    response = await client.post(
        "/api/v1/uploads",
        content=sent,
        headers={**key.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]["message"]
    assert response.json()["error"]["param"] == "file"
    assert sent.sent <= 64 * 1024  # refused at the first sign, not after reading it all
    assert stored(settings) == []


async def test_finding_7_a_deeply_nested_multipart_body_is_a_400(
    client: httpx2.AsyncClient, keys: KeyFactory, settings: Settings
) -> None:
    key = await keys()
    response = await client.post(
        "/api/v1/uploads",
        content=nested_multipart(2000),
        headers={**key.headers, "Content-Type": "multipart/form-data; boundary=b0"},
    )
    assert response.status_code == 400, response.text
    assert "not an image" in response.json()["error"]["message"]
    assert stored(settings) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"--b\r\n" + b"X-Long: " + b"a" * 5000 + b"\r\n\r\nz\r\n--b--\r\n", "header"),
        (b"junk before\r\n--b--\r\n", "Malformed multipart body"),
        (tiny_parts(2), "exactly one file"),
        (b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc', "no closing boundary"),
    ],
)
async def test_malformed_multipart_bodies_say_what_was_wrong(
    client: httpx2.AsyncClient, keys: KeyFactory, body: bytes, message: str
) -> None:
    key = await keys()
    response = await client.post(
        "/api/v1/uploads",
        content=body,
        headers={**key.headers, "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]["message"]


async def test_a_multipart_file_over_the_cap_is_413(
    client: httpx2.AsyncClient, keys: KeyFactory
) -> None:
    key = await keys()
    big = b"\0" * 10_000_001
    response = await client.post(
        "/api/v1/uploads", files={"file": ("a.png", big)}, headers=key.headers
    )
    assert response.status_code == 413
    assert "Uploads are at most 10000000 bytes" in response.json()["error"]["message"]


async def test_a_normal_multipart_upload_with_extra_fields_is_stored(
    client: httpx2.AsyncClient, keys: KeyFactory, settings: Settings
) -> None:
    key = await keys()
    image = make_image(400, 400)
    response = await client.post(
        "/api/v1/uploads",
        files={"file": ("fox.png", image, "image/png")},
        data={"purpose": "reference"},
        headers=key.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["bytes"] == len(image)
    assert [p.read_bytes() for p in stored(settings)] == [image]
