"""Result files, at unguessable URLs: from the local disk, by redirect to a presigned
object-storage URL, or proxied from object storage (MEDIAGATE_S3_SERVE)."""

import asyncio
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from mediagate.core.clock import isoformat
from mediagate.core.errors import Gone, MediagateError, NotFound
from mediagate.core.schemas import ErrorBody
from mediagate.core.state import core_state
from mediagate.media.models import ExpiredFile
from mediagate.media.schemas import FILE_CONTENT
from mediagate.media.storage import (
    RangeNotSatisfiable,
    S3Storage,
    Storage,
    sniffed_type,
    valid_key,
)

router = APIRouter(tags=["files"])
MAGIC_BYTES = 12
OCTET_STREAM = "application/octet-stream"


def file_headers(image_type: str | None) -> dict[str, str]:
    """Headers for stored bytes (uploaded or from a provider, so untrusted): never sniffed
    into HTML, never scripted, and anything not an image only as a download."""
    return {
        "Cache-Control": "public, max-age=31536000, immutable",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Content-Disposition": "inline" if image_type else "attachment",
    }


def _head(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(MAGIC_BYTES)


@router.get(
    "/files/{key}",
    summary="A stored result file",
    response_class=Response,
    responses={
        200: {
            "description": "The file, typed by its own bytes (not an image: a download)",
            "content": FILE_CONTENT,
        },
        307: {"description": "presigned object-storage URL"},
        404: {"description": "not_found", "model": ErrorBody},
        410: {"description": "expired: the retention sweeper deleted it", "model": ErrorBody},
    },
)
async def get_file(request: Request, key: str) -> Response:
    storage: Storage = request.app.state.storage
    if not valid_key(key):
        raise NotFound("No such file")
    if (path := storage.local_path(key)) is not None:
        image_type = sniffed_type(await asyncio.to_thread(_head, path))
        return FileResponse(
            path,
            media_type=image_type or "application/octet-stream",
            headers=file_headers(image_type),
        )
    if (url := await storage.public_url(key)) is not None:
        # The presigned URL expires; the redirect itself must not be cached longer.
        return RedirectResponse(url, 307, headers={"Cache-Control": "private, max-age=300"})
    if isinstance(storage, S3Storage):
        return await _proxied(request, storage, key)
    data = await storage.get(key)
    if data is None:
        raise await missing(request, key)
    image_type = sniffed_type(data[:MAGIC_BYTES])
    return Response(
        data, media_type=image_type or "application/octet-stream", headers=file_headers(image_type)
    )


async def missing(request: Request, key: str) -> MediagateError:
    """Why a valid key has no file: 410 if the retention sweeper deleted it, else 404."""
    async with core_state(request).db.read() as session:
        expired = await session.get(ExpiredFile, key)
    if expired is None:
        return NotFound("No such file")
    return Gone(
        f"This file expired and was deleted at {isoformat(expired.expired_at)}: results "
        "and uploads are kept for a limited time (the task object's `expires_at`)"
    )


async def _proxied(request: Request, storage: S3Storage, key: str) -> Response:
    """Object storage through us (MEDIAGATE_S3_SERVE=proxy), streamed, with the client's
    Range passed on so players can seek."""
    try:
        found = await storage.open_object(key, request.headers.get("range"))
    except RangeNotSatisfiable as exc:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{exc.size}"})
    if found is None:
        raise await missing(request, key)
    stored_type = found.content_type if found.content_type != OCTET_STREAM else None
    headers = {
        **file_headers(stored_type),
        "Accept-Ranges": "bytes",
        "Content-Length": str(found.length),
    }
    if found.content_range:
        headers["Content-Range"] = found.content_range
    return StreamingResponse(
        found.chunks,
        status_code=206 if found.content_range else 200,
        media_type=stored_type or OCTET_STREAM,
        headers=headers,
    )
