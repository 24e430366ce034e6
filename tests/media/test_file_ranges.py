"""Stored files answer HTTP range requests (players seek in videos): from local storage
here, from object storage in tests/scale/test_storage_s3.py."""

from pathlib import Path
from typing import Any

import httpx2

from mediagate.media.storage import LocalStorage

KEY = "abcdefghijklmnopqrstuvwx.mp4"
BODY = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40  # an MP4's magic, then bytes


async def stored(app: Any, tmp_path: Path) -> None:
    storage = app.state.storage
    assert isinstance(storage, LocalStorage)
    scratch = tmp_path / "scratch.mp4"
    scratch.write_bytes(BODY)
    await storage.put_file(KEY, scratch, "video/mp4")
    assert not scratch.exists()  # moved, not copied


async def test_range_requests_on_local_files(
    app: Any, client: httpx2.AsyncClient, tmp_path: Path
) -> None:
    await stored(app, tmp_path)
    whole = await client.get(f"/files/{KEY}")
    assert whole.status_code == 200 and whole.content == BODY
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] == "video/mp4"
    size = len(BODY)
    for header, part, content_range in (
        ("bytes=0-99", BODY[:100], f"bytes 0-99/{size}"),
        ("bytes=100-", BODY[100:], f"bytes 100-{size - 1}/{size}"),
        ("bytes=-50", BODY[-50:], f"bytes {size - 50}-{size - 1}/{size}"),
    ):
        answer = await client.get(f"/files/{KEY}", headers={"Range": header})
        assert answer.status_code == 206, header
        assert answer.content == part, header
        assert answer.headers["content-range"] == content_range
        assert answer.headers["content-length"] == str(len(part))
    beyond = await client.get(f"/files/{KEY}", headers={"Range": f"bytes={size + 10}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{size}"
