"""Result files, at unguessable URLs: from the local disk, by redirect to a presigned
object-storage URL, or proxied from object storage (MEDIAGATE_S3_SERVE)."""

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from mediagate.core.errors import NotFound
from mediagate.media.storage import Storage, content_type, valid_key

router = APIRouter(tags=["files"])
IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}


@router.get(
    "/files/{key}",
    summary="A stored result file",
    responses={
        307: {"description": "presigned object-storage URL"},
        404: {"description": "not_found"},
    },
)
async def get_file(request: Request, key: str) -> Response:
    storage: Storage = request.app.state.storage
    if not valid_key(key):
        raise NotFound("No such file")
    if (path := storage.local_path(key)) is not None:
        return FileResponse(path, media_type=content_type(key), headers=IMMUTABLE)
    if (url := await storage.public_url(key)) is not None:
        # The presigned URL expires; the redirect itself must not be cached longer.
        return RedirectResponse(url, 307, headers={"Cache-Control": "private, max-age=300"})
    data = await storage.get(key)
    if data is None:
        raise NotFound("No such file")
    return Response(data, media_type=content_type(key), headers=IMMUTABLE)
