"""Absolute links for mail. Behind a proxy, and always in production, MEDIAGATE_PUBLIC_BASE_URL
is their base, so a client's Host header never shapes a link we mail (a reset link
pointing at someone else's site); in development without it, the request's own base."""

from fastapi import Request

from mediagate.core.http import public_base
from mediagate.core.settings import Settings


def link(request: Request, path: str) -> str:
    return f"{public_base(request)}{path}"


def background_base(settings: Settings) -> str:
    """The base for mail sent with no request at hand (receipts from the reconciler,
    low-balance alerts): PUBLIC_BASE_URL, else where `serve` listens."""
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/")
    return f"http://{settings.host}:{settings.port}"
