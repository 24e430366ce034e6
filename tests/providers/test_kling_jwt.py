"""The token Kling receives: header, claims, expiry, reuse until near expiry."""

import jwt

from mediagate.providers.kling import REFRESH_BEFORE_S, TOKEN_LIFETIME_S, KlingToken

SECRET = "kling-secret-key-0123456789abcdefghij"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_header_and_claims() -> None:
    clock = Clock(1_800_000_000.0)
    token = KlingToken("AK-123", SECRET, clock=clock).get()
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    claims = jwt.decode(
        token, SECRET, algorithms=["HS256"], options={"verify_exp": False, "verify_nbf": False}
    )
    assert claims == {"iss": "AK-123", "exp": 1_800_000_000 + 1800, "nbf": 1_800_000_000 - 5}


def test_reused_until_near_expiry_then_refreshed() -> None:
    clock = Clock(1_800_000_000.0)
    tokens = KlingToken("AK-123", SECRET, clock=clock)
    first = tokens.get()
    clock.now += TOKEN_LIFETIME_S - REFRESH_BEFORE_S - 1
    assert tokens.get() is first
    clock.now += 2
    second = tokens.get()
    assert second != first
    claims = jwt.decode(
        second, SECRET, algorithms=["HS256"], options={"verify_exp": False, "verify_nbf": False}
    )
    assert claims["exp"] == int(clock.now) + TOKEN_LIFETIME_S


def test_a_wrong_secret_does_not_verify() -> None:
    token = KlingToken("AK-123", SECRET).get()
    try:
        jwt.decode(token, "another-secret-0123456789abcdefghijkl", algorithms=["HS256"])
    except jwt.InvalidSignatureError:
        return
    raise AssertionError("a token signed with another secret verified")
