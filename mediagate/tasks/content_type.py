"""415 for a JSON route's body that says it is something else."""

from fastapi import Request

from mediagate.core.errors import UnsupportedMediaType


def require_json(request: Request) -> None:
    """`application/json` (any charset, any `+json` suffix type) or a 415 saying so;
    checked before the body is read."""
    declared = request.headers.get("content-type", "")
    media_type = declared.split(";", 1)[0].strip().lower()
    if media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        return
    raise UnsupportedMediaType(
        f"Content-Type must be application/json, not {declared or 'missing'}",
        param="Content-Type",
    )
