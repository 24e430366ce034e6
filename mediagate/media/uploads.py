"""POST /api/v1/uploads: a client's image, checked like any reference, stored, and given
a URL that works in `images` (read back from storage, never over the network)."""

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from mediagate.catalog.spec import REFERENCE_PARAM, InputRules
from mediagate.core.clock import isoformat, utcnow
from mediagate.core.errors import InvalidRequest, PayloadTooLarge
from mediagate.core.http import files_base, read_body, success
from mediagate.core.ids import new_id, random_base62
from mediagate.core.schemas import BEARER, answers
from mediagate.core.state import core_state
from mediagate.keys.deps import CurrentKey
from mediagate.media.expiry import Retention
from mediagate.media.images import ImageRejected, check_reference
from mediagate.media.models import Upload
from mediagate.media.schemas import UPLOAD_BODY, UploadData
from mediagate.media.storage import Storage

router = APIRouter(prefix="/api/v1", tags=["uploads"])
MAX_PARTS = 16
"""An upload form needs one part (a browser may add a few fields); more is an attack."""
MAX_PART_HEADER_BYTES = 1024
MAX_PART_HEADERS = 8
MAX_PREAMBLE_BYTES = 1024
"""Bytes before the first boundary: clients send none."""


@router.post(
    "/uploads",
    summary="Upload a reference image (multipart field `file`, or the raw image as the body)",
    responses=answers(UploadData, 400, 401, 413, 429),
    openapi_extra={**BEARER, **UPLOAD_BODY},
)
async def create_upload(request: Request, caller: CurrentKey) -> JSONResponse:
    core = core_state(request)
    limit = core.settings.upload_max_bytes
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/"):
        data = await multipart_file(content_type, request.stream(), limit)
    else:
        data = await read_body(request, limit)
    if not data:
        raise InvalidRequest("The upload is empty", param="file")
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
    retention = Retention.from_settings(core.settings)
    return success(
        {
            "id": upload.id,
            "url": f"{base}/files/{key}",
            "format": info.format,
            "bytes": len(data),
            "width": info.width,
            "height": info.height,
            "expires_at": isoformat(retention.upload_expiry(upload.created_at)),
        }
    )


def upload_rules(models: object, limit: int) -> InputRules:
    """The loosest rules of any model that takes reference images (a text-only model's
    defaults say nothing about references): a model still checks its own at prepare."""
    every = list(models)  # type: ignore[call-overload]
    specs = [m for m in every if REFERENCE_PARAM in m.params] or every
    return InputRules(
        formats=tuple(sorted({f for m in specs for f in m.inputs.formats})),
        min_side=min(m.inputs.min_side for m in specs),
        max_aspect=max(m.inputs.max_aspect for m in specs),
        max_bytes=limit,
        max_pixels=max(m.inputs.max_pixels for m in specs),
        max_decoded_bytes=max(m.inputs.max_decoded_bytes for m in specs),
    )


async def multipart_file(content_type: str, chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The bytes of the `file` field (or the only file) of a multipart/form-data body,
    parsed chunk by chunk as it arrives: a bounded number of parts with bounded headers, so
    a hostile body costs little CPU and is refused at the first sign. A nested multipart
    body is only a part's opaque bytes."""
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary", b"")
    if not 0 < len(boundary) <= 70:  # RFC 2046 5.1.1
        raise InvalidRequest("The multipart body's boundary is missing or too long", param="file")
    parts = _FilePart(limit)
    parser = MultipartParser(
        boundary,
        callbacks=parts.callbacks(),  # type: ignore[arg-type]
        max_header_count=MAX_PART_HEADERS,
        max_header_size=MAX_PART_HEADER_BYTES,
    )
    fed = 0
    async for chunk in chunks:
        if parts.ended:
            continue  # the epilogue: counted against the body cap, never parsed
        try:
            parser.write(chunk)
        except MultipartParseError as exc:
            raise InvalidRequest(f"Malformed multipart body: {exc}", param="file") from None
        fed += len(chunk)
        if parts.count == 0 and fed > MAX_PREAMBLE_BYTES:
            raise InvalidRequest(
                f"Malformed multipart body: no part within its first {MAX_PREAMBLE_BYTES} bytes",
                param="file",
            )
    if not parts.ended:
        raise InvalidRequest("Malformed multipart body: no closing boundary", param="file")
    if parts.files != 1:
        raise InvalidRequest("Send exactly one file, in the multipart field `file`", param="file")
    if not parts.data:
        raise InvalidRequest("The uploaded file is empty", param="file")
    return bytes(parts.data)


class _FilePart:
    """Collects the one file of a multipart body from the parser's callbacks."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self.files = 0
        self.ended = False
        self.data = bytearray()
        self._in_file = False
        self._field = bytearray()
        self._value = bytearray()
        self._disposition = b""

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self.count += 1
        if self.count > MAX_PARTS:
            raise InvalidRequest(
                f"Too many multipart parts (at most {MAX_PARTS}); send one field `file`",
                param="file",
            )
        self._in_file = False
        self._disposition = b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        if self._field.lower() == b"content-disposition":
            self._disposition = bytes(self._value)
        self._field.clear()
        self._value.clear()

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._disposition)
        if b"filename" in params or params.get(b"name") == b"file":
            self.files += 1
            if self.files > 1:
                raise InvalidRequest(
                    "Send exactly one file, in the multipart field `file`", param="file"
                )
            self._in_file = True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._in_file:
            return
        self.data += data[start:end]
        if len(self.data) > self.limit:
            raise PayloadTooLarge(f"Uploads are at most {self.limit} bytes", param="file")

    def _end(self) -> None:
        self.ended = True
