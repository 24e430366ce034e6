"""POST /v1/images/edits: OpenAI's multipart edit request. Each image gets the checks of
an upload (media/images.py, the model's input rules), is stored like one, and goes to
the model as a reference image URL of ours, read back from storage at prepare."""

import hashlib
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile
from starlette.types import Message

from mediagate.core.clock import utcnow
from mediagate.core.errors import InvalidRequest, PayloadTooLarge
from mediagate.core.http import read_body
from mediagate.core.ids import new_id, random_base62
from mediagate.core.state import core_state
from mediagate.keys.deps import CurrentKey
from mediagate.media.images import ImageRejected, check_reference
from mediagate.media.models import Upload
from mediagate.media.storage import Storage
from mediagate.openai_compat import answers
from mediagate.openai_compat.errors import OpenAIError
from mediagate.openai_compat.schemas import EDIT_FIELDS, native_body, parse_request
from mediagate.tasks import intake

MULTIPART_OVERHEAD = 64 * 1024
"""Room for the text fields and part headers above the images' own bytes."""
MAX_IMAGES = 16
"""Files a body may carry before the parser stops (the model's own limit is checked
after); keeps a hostile body from making the parser spool thousands of parts."""
MAX_TEXT_FIELD_BYTES = 16 * 1024


async def create_edit(request: Request, caller: CurrentKey) -> JSONResponse:
    core = core_state(request)
    settings = core.settings
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise OpenAIError(
            415,
            f"/v1/images/edits takes multipart/form-data, not {content_type or 'no Content-Type'}",
            code="unsupported_media_type",
        )
    limit = settings.upload_max_bytes
    try:
        raw = await read_body(request, limit + MULTIPART_OVERHEAD)
    except PayloadTooLarge:
        raise PayloadTooLarge(
            f"The body is over the upload cap: at most {limit} bytes of images "
            f"(MEDIAGATE_UPLOAD_MAX_BYTES) plus {MULTIPART_OVERHEAD} for the other fields"
        ) from None
    fields, files = await _form(request, raw, limit)
    if "mask" in files or "mask" in fields:
        raise InvalidRequest(
            "mask is not supported: the prompt applies to the whole image (leave mask out)",
            param="mask",
        )
    images = files.pop("image", [])
    if not images:
        raise InvalidRequest("Missing required parameter: image (one or more files)", param="image")
    form_fields: dict[str, Any] = dict(fields)
    if fields.get("n", "").isdigit():  # multipart fields are text
        form_fields["n"] = int(fields["n"])
    parsed = parse_request(core.catalog, form_fields, EDIT_FIELDS)
    checked_images = [_check(i, data, parsed.model.inputs) for i, data in enumerate(images)]
    keys = [f"up_{random_base62(32)}.{info.extension}" for info, _ in checked_images]
    base = (settings.public_base_url or f"http://{settings.host}:{settings.port}").rstrip("/")
    native = native_body(parsed, [f"{base}/files/{key}" for key in keys])
    generation = answers.checked(parsed, native, core.catalog)
    intake.check_routable(request, generation, caller)
    # Stored only now that every check has passed: a refused request leaves no file.
    storage: Storage = request.app.state.storage
    for key, data in zip(keys, images, strict=True):
        await storage.put(key, data)
    async with core.db.write() as session:
        now = utcnow()
        for key, (info, data) in zip(keys, checked_images, strict=True):
            session.add(
                Upload(
                    id=new_id("upl", 16),
                    account_id=caller.account_id,
                    key=key,
                    format=info.format,
                    bytes=len(data),
                    width=info.width,
                    height=info.height,
                    created_at=now,
                )
            )
    # Replays with the same Idempotency-Key send the same images, not the same keys.
    fingerprint = {
        **native,
        "images": [hashlib.sha256(data).hexdigest() for data in images],
    }
    return await answers.generate(request, caller, generation, parsed, fingerprint)


async def _form(
    request: Request, raw: bytes, limit: int
) -> tuple[dict[str, str], dict[str, list[bytes]]]:
    """The text fields and the files (`image` and `image[]` together) of the body."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    # The body was read (and capped) already; the parser reads it again from memory.
    body = Request(request.scope, replay)
    form = await body.form(
        max_files=MAX_IMAGES,
        max_fields=len(EDIT_FIELDS) + 4,
        max_part_size=MAX_TEXT_FIELD_BYTES,
    )
    fields: dict[str, str] = {}
    files: dict[str, list[bytes]] = {}
    try:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                target = "image" if name in ("image", "image[]") else name
                data = await value.read()
                if len(data) > limit:
                    raise PayloadTooLarge(
                        f"{name}: each image is at most {limit} bytes (MEDIAGATE_UPLOAD_MAX_BYTES)"
                    )
                files.setdefault(target, []).append(data)
            elif name in fields:
                raise InvalidRequest(f"{name} may be given only once", param=name)
            else:
                fields[name] = value
    finally:
        await form.close()
    for name in files:
        if name not in ("image", "mask"):
            raise InvalidRequest(f"Unexpected file field: {name}", param=name)
    return fields, files


def _check(index: int, data: bytes, rules: Any) -> tuple[Any, bytes]:
    try:
        return check_reference(data, rules), data
    except ImageRejected as exc:
        raise InvalidRequest(f"image[{index}] rejected: {exc}", param="image") from None
