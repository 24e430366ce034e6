"""Reference images in the form a route takes them.

The prepare step fetched, checked and stored each reference. A route gets the user's own
URL where it accepts the format and takes URLs; otherwise our stored copy, converted to a
format the provider documents (a WebP for Kling becomes a PNG), sent by our public URL
when MEDIAGATE_PUBLIC_BASE_URL is set, or inline (Base64) where the API takes that.
Never the original of a format the provider does not accept.
"""

import asyncio
import base64
import io
from typing import Any

from PIL import Image

from mediagate.catalog.spec import REFERENCE_PARAM, RouteTask
from mediagate.media.storage import Storage

FORMAT_OF_EXTENSION = {"jpg": "jpeg", "png": "png", "webp": "webp"}
MIME = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


class ReferencesNotAccepted(Exception):
    """This route cannot receive the task's references (the message says which and why)."""


async def route_references(
    route: RouteTask,
    params: dict[str, Any],
    prepared: dict[str, Any],
    storage: Storage,
    public_base_url: str | None,
    *,
    max_bytes: int,
) -> tuple[str, ...]:
    urls: list[str] = params.get(REFERENCE_PARAM, [])
    stored: list[dict[str, Any]] = prepared.get("references", [])
    sent = []
    for index, (url, ref) in enumerate(zip(urls, stored, strict=True)):
        key = ref["key"]
        fmt = FORMAT_OF_EXTENSION[key.rsplit(".", 1)[1]]
        if fmt in route.formats and route.transports[0] == "url":
            sent.append(url)
            continue
        sent.append(
            await _our_copy(route, index, key, fmt, storage, public_base_url, max_bytes=max_bytes)
        )
    return tuple(sent)


async def _our_copy(
    route: RouteTask,
    index: int,
    key: str,
    fmt: str,
    storage: Storage,
    public_base_url: str | None,
    *,
    max_bytes: int,
) -> str:
    ways = [t for t in route.transports if t != "url" and (t != "stored_url" or public_base_url)]
    if not ways:
        needs = "MEDIAGATE_PUBLIC_BASE_URL (so the provider can fetch our copy)"
        raise ReferencesNotAccepted(
            f"images[{index}] is {fmt.upper()}, which this provider does not accept, and "
            f"a converted copy cannot reach it without {needs}"
        )
    stored = await storage.get(key)
    if stored is None:
        raise ReferencesNotAccepted(f"images[{index}]: our stored copy is gone")
    data = stored
    if fmt not in route.formats:
        fmt, data = await asyncio.to_thread(convert, data, route.formats, max_bytes)
        key = f"{key.rsplit('.', 1)[0]}c.{'jpg' if fmt == 'jpeg' else fmt}"
        await storage.put(key, data)
    way = ways[0]
    if way == "stored_url":
        assert public_base_url is not None
        return await storage.public_url(key) or f"{public_base_url.rstrip('/')}/files/{key}"
    encoded = base64.b64encode(data).decode()
    # Kling wants the bare Base64 (no data: prefix); fal takes files as data: URIs.
    return encoded if way == "base64" else f"data:{MIME[fmt]};base64,{encoded}"


def convert(data: bytes, formats: tuple[str, ...], max_bytes: int) -> tuple[str, bytes]:
    """The checked image re-encoded in an accepted format: PNG (lossless) where accepted
    and small enough, else JPEG."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        if "png" in formats:
            out = io.BytesIO()
            image.save(out, format="PNG")
            if len(out.getvalue()) <= max_bytes or "jpeg" not in formats:
                return "png", out.getvalue()
        out = io.BytesIO()
        image.convert("RGB").save(out, format="JPEG", quality=92)
        return "jpeg", out.getvalue()
