"""POST /api/v1/uploads: a client's image, checked like any reference, stored, and given
a URL that works in `images` (read back from storage, never over the network)."""

from email.parser import BytesParser
from email.policy import HTTP

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from mediagate.catalog.spec import InputRules
from mediagate.core.clock import utcnow
from mediagate.core.errors import InvalidRequest, PayloadTooLarge
from mediagate.core.http import files_base, read_body, success
from mediagate.core.ids import new_id, random_base62
from mediagate.core.schemas import BEARER, answers
from mediagate.core.state import core_state
from mediagate.keys.deps import CurrentKey
from mediagate.media.images import ImageRejected, check_reference
from mediagate.media.models import Upload
from mediagate.media.schemas import UPLOAD_BODY, UploadData
from mediagate.media.storage import Storage

router = APIRouter(prefix="/api/v1", tags=["uploads"])
MULTIPART_OVERHEAD = 64 * 1024


@router.post(
    "/uploads",
    summary="Upload a reference image (multipart field `file`, or the raw image as the body)",
    responses=answers(UploadData, 400, 401, 413, 429),
    openapi_extra={**BEARER, **UPLOAD_BODY},
)
async def create_upload(request: Request, caller: CurrentKey) -> JSONResponse:
    core = core_state(request)
    limit = core.settings.upload_max_bytes
    body = await read_body(request, limit + MULTIPART_OVERHEAD)
    if not body:
        raise InvalidRequest("The upload is empty", param="file")
    content_type = request.headers.get("content-type", "")
    data = multipart_file(content_type, body) if content_type.startswith("multipart/") else body
    if len(data) > limit:
        raise PayloadTooLarge(f"Uploads are at most {limit} bytes")
    rules = upload_rules(core.catalog.models.values(), limit)
    try:
        info = check_reference(data, rules)
    except ImageRejected as exc:
        raise InvalidRequest(f"Upload rejected: {exc}", param="file") from None
    key = f"up_{random_base62(32)}.{info.extension}"
    storage: Storage = request.app.state.storage
    await storage.put(key, data)
    upload = Upload(
        id=new_id("upl", 16),
        account_id=caller.account_id,
        key=key,
        format=info.format,
        bytes=len(data),
        width=info.width,
        height=info.height,
        created_at=utcnow(),
    )
    async with core.db.write() as session:
        session.add(upload)
    base = files_base(request)
    return success(
        {
            "id": upload.id,
            "url": f"{base}/files/{key}",
            "format": info.format,
            "bytes": len(data),
            "width": info.width,
            "height": info.height,
        }
    )


def upload_rules(models: object, limit: int) -> InputRules:
    """The loosest rules any model accepts: a model still checks its own at prepare."""
    specs = list(models)  # type: ignore[call-overload]
    return InputRules(
        formats=tuple(sorted({f for m in specs for f in m.inputs.formats})),
        min_side=min(m.inputs.min_side for m in specs),
        max_aspect=max(m.inputs.max_aspect for m in specs),
        max_bytes=limit,
        max_pixels=max(m.inputs.max_pixels for m in specs),
    )


def multipart_file(content_type: str, body: bytes) -> bytes:
    """The bytes of the `file` field (or the only file) of a multipart/form-data body."""
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    if not message.is_multipart():
        raise InvalidRequest("Malformed multipart body", param="file")
    files = [
        p
        for p in message.iter_parts()
        if p.get_filename() is not None
        or p.get_param("name", header="content-disposition") == "file"
    ]
    if len(files) != 1:
        raise InvalidRequest("Send exactly one file, in the multipart field `file`", param="file")
    payload = files[0].get_payload(decode=True)
    if not isinstance(payload, bytes) or not payload:
        raise InvalidRequest("The uploaded file is empty", param="file")
    return payload
