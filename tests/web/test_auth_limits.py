"""The in-process buckets behind sign-in and sign-up limits are named by what clients
send (addresses, emails): their number stays bounded."""

import pytest

from mediagate.core.errors import RateLimited
from mediagate.keys.ratelimit import RateLimiter


async def test_made_up_names_do_not_grow_the_buckets_without_bound() -> None:
    limiter = RateLimiter(1 / 3600, 1, max_buckets=100)
    for n in range(1000):
        await limiter.check(f"login-email:{n}@example.com")
        assert len(limiter._buckets) <= 100
    await limiter.check("victim")
    with pytest.raises(RateLimited):  # a live bucket still limits
        await limiter.check("victim")
