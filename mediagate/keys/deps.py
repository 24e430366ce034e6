"""The auth dependency: `CurrentKey` in a route signature means an authenticated caller."""

from typing import Annotated

from fastapi import Depends, Request

from mediagate.core.errors import AuthenticationFailed
from mediagate.core.state import core_state
from mediagate.keys.cache import KeyCache
from mediagate.keys.ratelimit import RateLimiter
from mediagate.keys.service import AuthedKey, hash_secret, lookup, parse_secret

MISSING = "Missing API key: send it as the header Authorization: Bearer <key>"
NOT_BEARER = "The Authorization header must be Bearer <key>"


async def current_key(request: Request) -> AuthedKey:
    header = request.headers.get("authorization")
    if header is None or not header.strip():
        raise AuthenticationFailed(MISSING)
    scheme, _, raw = header.strip().partition(" ")
    raw = raw.strip()
    if scheme.lower() != "bearer":
        raise AuthenticationFailed(NOT_BEARER)
    if not raw:
        raise AuthenticationFailed(MISSING)
    if parse_secret(raw) is None:
        raise AuthenticationFailed()  # no database work for garbage or typos
    core = core_state(request)
    key_hash = hash_secret(core.settings.hmac_secret, raw)
    cache: KeyCache = request.app.state.key_cache
    caller = cache.get(key_hash)
    if caller is None:
        async with core.db.read() as session:
            found = await lookup(session, key_hash)
        cache.put(key_hash, found)
        caller = found.key
    if caller.limits is not None:
        caller.limits.check_address(request.client.host if request.client else None)
    limiter: RateLimiter = request.app.state.rate_limiter
    await limiter.check(caller.id)
    return caller


CurrentKey = Annotated[AuthedKey, Depends(current_key)]
