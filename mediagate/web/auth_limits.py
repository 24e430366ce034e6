"""How often sign-in and sign-up may be tried. Token buckets (keys/ratelimit.py), shared by
every replica through Redis when one is configured.

Sign-in is limited per (client address, email) pair, so a guesser elsewhere cannot lock
the real user out; per address over all emails, so one client cannot spray; and per email
from everyone together, more slowly, so a guesser spread over many addresses is still
capped. Sign-up is limited per address and for everyone together: each costs an argon2
hash and, with test credits on sign-up, a sandbox allowance. Two-factor codes are limited
per user, over every half-done sign-in together.

Emailed links are limited so no one can use us to flood a mailbox: password-reset
requests per address and, for everyone together, per email; links a signed-in user asks
for (confirmation sent again, a new address), per user."""

import hashlib

from mediagate.core.redis import RedisLink
from mediagate.core.settings import Settings
from mediagate.keys.ratelimit import RateLimiter


def _per_minute(n: int, redis: RedisLink | None) -> RateLimiter:
    return RateLimiter(n / 60, n, redis)


def _per_hour(n: int, redis: RedisLink | None) -> RateLimiter:
    return RateLimiter(n / 3600, n, redis)


def _digest(email: str) -> str:
    """Short bucket names whatever was typed in the email field."""
    return hashlib.sha256(email.encode()).hexdigest()[:32]


class AuthLimits:
    def __init__(self, settings: Settings, redis: RedisLink | None) -> None:
        self._login_pair = _per_minute(settings.login_attempts_per_minute, redis)
        self._login_address = _per_minute(settings.login_attempts_per_address_per_minute, redis)
        self._login_email = _per_hour(settings.login_attempts_per_email_per_hour, redis)
        self._signup_address = _per_hour(settings.signup_per_address_per_hour, redis)
        self._signup_all = _per_hour(settings.signup_per_hour, redis)
        self._two_factor = _per_hour(settings.two_factor_attempts_per_hour, redis)
        self._reset_address = _per_hour(settings.password_reset_per_address_per_hour, redis)
        self._reset_email = _per_hour(settings.password_reset_per_email_per_hour, redis)
        self._links_user = _per_hour(settings.email_links_per_user_per_hour, redis)

    async def login(self, address: str, email: str) -> None:
        """Take a sign-in attempt, or RateLimited. In this order, so attempts refused for
        one pair or address never drain the email's shared allowance."""
        email_key = _digest(email)
        await self._login_pair.check(f"login-pair:{address}:{email_key}")
        await self._login_address.check(f"login-ip:{address}")
        await self._login_email.check(f"login-email:{email_key}")

    async def signup(self, address: str) -> None:
        """Take a sign-up, or RateLimited (per address first, then everyone's)."""
        await self._signup_address.check(f"signup-ip:{address}")
        await self._signup_all.check("signup-all")

    async def two_factor(self, user_id: str) -> None:
        """Take a two-factor code attempt for `user_id` (over all their sign-ins, so
        starting sign-in again does not buy more guesses), or RateLimited."""
        await self._two_factor.check(f"2fa-user:{user_id}")

    async def password_reset(self, address: str, email: str) -> None:
        """Take a reset request, or RateLimited (per address first, then the email's)."""
        await self._reset_address.check(f"reset-ip:{address}")
        await self._reset_email.check(f"reset-email:{_digest(email)}")

    async def emailed_link(self, user_id: str) -> None:
        """Take a link a signed-in user asked to be mailed, or RateLimited."""
        await self._links_user.check(f"links-user:{user_id}")
