"""Models and body declarations of the media routes, for the OpenAPI schema."""

from typing import Any

from pydantic import Field

from mediagate.core.schemas import Strict
from mediagate.media.storage import CONTENT_TYPES, VIDEO_TYPES

IMAGE_TYPES = sorted(set(CONTENT_TYPES.values()))


class UploadData(Strict):
    id: str
    url: str
    format: str
    bytes: int
    width: int
    height: int
    expires_at: str | None = Field(
        description="When the file is deleted (ISO 8601, UTC); null: kept forever"
    )


_binary: dict[str, Any] = {"type": "string", "format": "binary"}
# `openapi_extra=` of POST /api/v1/uploads: the route reads its body itself.
UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The image: multipart/form-data with the field `file`, or the raw "
        "image as the whole body",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": _binary},
                    "required": ["file"],
                }
            },
            **{t: {"schema": _binary} for t in IMAGE_TYPES},
            "application/octet-stream": {"schema": _binary},
        },
    }
}
# The 200 of GET /files/{key}: the stored bytes, typed by their own magic.
FILE_CONTENT: dict[str, Any] = {
    t: {"schema": _binary}
    for t in [*IMAGE_TYPES, *sorted(set(VIDEO_TYPES.values())), "application/octet-stream"]
}
