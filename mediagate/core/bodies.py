"""Every request body is counted against its route's cap as it arrives, whoever reads it:
a declared Content-Length over the cap is answered 413 before anything is read, and a
body (chunked or not) that passes the cap is cut off at the chunk that passes it."""

from collections.abc import Callable
from dataclasses import dataclass

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mediagate.core.http import error_response
from mediagate.core.settings import Settings

UPLOADS_PATH = "/api/v1/uploads"
OPENAI_EDITS_PATH = "/v1/images/edits"
MULTIPART_OVERHEAD = 64 * 1024
"""Room for a multipart envelope (boundaries, part headers) around an upload's bytes."""


@dataclass(frozen=True)
class BodyCaps:
    """The largest body each path may send, by longest matching prefix."""

    default: int
    prefixes: tuple[tuple[str, int], ...]
    notes: tuple[tuple[str, str], ...] = ()
    """What a prefix's cap is made of, said in its 413 (e.g. the upload setting)."""

    def for_path(self, path: str) -> int:
        matches = [(len(p), cap) for p, cap in self.prefixes if path.startswith(p)]
        return max(matches)[1] if matches else self.default

    def message(self, path: str, cap: int) -> str:
        note = next((n for p, n in self.notes if path.startswith(p)), None)
        text = f"Request body is larger than {cap} bytes"
        return f"{text} ({note})" if note else text


def body_caps(settings: Settings) -> BodyCaps:
    """Uploads: the upload cap plus its envelope; the rest of the API: JSON bodies; anything
    else (dashboard forms): the form cap."""
    upload = (
        f"files of at most {settings.upload_max_bytes} bytes (MEDIAGATE_UPLOAD_MAX_BYTES) "
        f"plus {MULTIPART_OVERHEAD} for the multipart envelope"
    )
    return BodyCaps(
        default=settings.form_max_bytes,
        notes=((UPLOADS_PATH, upload), (OPENAI_EDITS_PATH, upload)),
        prefixes=(
            (UPLOADS_PATH, settings.upload_max_bytes + MULTIPART_OVERHEAD),
            (OPENAI_EDITS_PATH, settings.upload_max_bytes + MULTIPART_OVERHEAD),
            ("/api/", settings.max_body_bytes),
            ("/v1/", settings.max_body_bytes),
        ),
    )


class BodyTooLarge(Exception):
    """Raised into the app by `receive` when the body passes its cap."""


ErrorShape = Callable[[int, str, dict[str, str]], Response]
"""Renders an error (status, message, headers) in the shape a door's clients expect."""


class BodyLimitMiddleware:
    """Answers 413 (and closes the connection, so the rest is never read) the moment a
    body passes its path's cap; in our error shape, or in the shape registered for the
    path's prefix (the OpenAI-compatible door answers in OpenAI's)."""

    def __init__(
        self, app: ASGIApp, caps: BodyCaps, shapes: tuple[tuple[str, ErrorShape], ...] = ()
    ) -> None:
        self.app = app
        self.caps = caps
        self.shapes = shapes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.caps.for_path(scope["path"])
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > cap:
            await self._too_large(cap, scope, receive, send)
            return
        received = 0
        exceeded = False
        started = False

        async def counted_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    exceeded = True
                    raise BodyTooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # whatever the app made of BodyTooLarge, the answer is our 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await self._too_large(cap, scope, receive, send)

    async def _too_large(self, cap: int, scope: Scope, receive: Receive, send: Send) -> None:
        message = self.caps.message(scope["path"], cap)
        headers = {"Connection": "close"}
        shape = next((s for p, s in self.shapes if scope["path"].startswith(p)), None)
        response = (
            shape(413, message, headers)
            if shape
            else error_response(413, "invalid_request_error", message, headers=headers)
        )
        await response(scope, receive, send)
