"""Every request body is counted against its route's cap as it arrives, whoever reads it:
a declared Content-Length over the cap is answered 413 before anything is read, and a
body (chunked or not) that passes the cap is cut off at the chunk that passes it."""

from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mediagate.core.http import error_response
from mediagate.core.settings import Settings

UPLOADS_PATH = "/api/v1/uploads"
MULTIPART_OVERHEAD = 64 * 1024
"""Room for a multipart envelope (boundaries, part headers) around an upload's bytes."""


@dataclass(frozen=True)
class BodyCaps:
    """The largest body each path may send, by longest matching prefix."""

    default: int
    prefixes: tuple[tuple[str, int], ...]

    def for_path(self, path: str) -> int:
        matches = [(len(p), cap) for p, cap in self.prefixes if path.startswith(p)]
        return max(matches)[1] if matches else self.default


def body_caps(settings: Settings) -> BodyCaps:
    """Uploads: the upload cap plus its envelope; the rest of the API: JSON bodies; anything
    else (dashboard forms): the form cap."""
    return BodyCaps(
        default=settings.form_max_bytes,
        prefixes=(
            (UPLOADS_PATH, settings.upload_max_bytes + MULTIPART_OVERHEAD),
            ("/api/", settings.max_body_bytes),
        ),
    )


class BodyTooLarge(Exception):
    """Raised into the app by `receive` when the body passes its cap."""


class BodyLimitMiddleware:
    """Answers 413 (and closes the connection, so the rest is never read) the moment a
    body passes its path's cap."""

    def __init__(self, app: ASGIApp, caps: BodyCaps) -> None:
        self.app = app
        self.caps = caps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.caps.for_path(scope["path"])
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > cap:
            await _too_large(cap, scope, receive, send)
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
            await _too_large(cap, scope, receive, send)


async def _too_large(cap: int, scope: Scope, receive: Receive, send: Send) -> None:
    response = error_response(
        413,
        "invalid_request_error",
        f"Request body is larger than {cap} bytes",
        headers={"Connection": "close"},
    )
    await response(scope, receive, send)
