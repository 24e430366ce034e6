"""Opaque random identifiers."""

import secrets

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62(n: int, width: int = 0) -> str:
    """Encode a non-negative integer in base62, left-padded with zeros to `width`."""
    digits = []
    while n:
        n, r = divmod(n, 62)
        digits.append(BASE62[r])
    return "".join(reversed(digits)).rjust(width, "0")


def random_base62(length: int) -> str:
    """`length` uniformly random base62 characters (one call to the CSPRNG)."""
    return base62(secrets.randbelow(62**length), length)


def new_id(prefix: str, length: int = 22) -> str:
    """`prefix_` + `length` base62 characters (22 chars ≈ 131 bits: not guessable)."""
    return f"{prefix}_{random_base62(length)}"
