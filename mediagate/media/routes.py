"""Result files, at unguessable URLs."""

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from mediagate.core.errors import NotFound
from mediagate.media.storage import Storage, content_type

router = APIRouter(tags=["files"])


@router.get(
    "/files/{key}", summary="A stored result file", responses={404: {"description": "not_found"}}
)
async def get_file(request: Request, key: str) -> FileResponse:
    storage: Storage = request.app.state.storage
    path = storage.local_path(key)
    if path is None:
        raise NotFound("No such file")
    return FileResponse(
        path,
        media_type=content_type(key),
        headers={"Cache-Control": "public, max-age=31536000, immutable"},
    )
