"""The auth dependency: `CurrentKey` in a route signature means an authenticated caller."""

from typing import Annotated

from fastapi import Depends, Request

from mediagate.core.errors import AuthenticationFailed
from mediagate.core.state import core_state
from mediagate.keys.ratelimit import RateLimiter
from mediagate.keys.service import AuthedKey, authenticate


async def current_key(request: Request) -> AuthedKey:
    header = request.headers.get("authorization", "")
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise AuthenticationFailed()
    core = core_state(request)
    async with core.db.read() as session:
        caller = await authenticate(session, core.settings.hmac_secret, raw.strip())
    limiter: RateLimiter = request.app.state.rate_limiter
    await limiter.check(caller.id)
    return caller


CurrentKey = Annotated[AuthedKey, Depends(current_key)]
