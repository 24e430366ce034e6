"""Password rules and argon2id hashing. A hash costs tens of milliseconds of CPU and 19 MiB,
so it runs on a small dedicated thread pool, never on the event loop: callers beyond the
pool's size wait their turn while the loop keeps answering everyone else."""

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn.frequency_lists import FREQUENCY_LISTS  # type: ignore[import-untyped]  # no stubs

from mediagate.core.errors import InvalidRequest

MIN_LENGTH = 10
T = TypeVar("T")
# OWASP's argon2id profile m=19 MiB, t=2, p=1 (Password Storage Cheat Sheet), rather than
# argon2-cffi's default 64 MiB: memory is what parallel sign-ups multiply, and the pool's
# threads x 19 MiB is the most hashing can add to the process. Older hashes still verify
# (their parameters are in the hash) and are rehashed at the next sign-in.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


@cache
def _common() -> frozenset[str]:
    """zxcvbn's 30,000 most common passwords, lower-cased; loaded on first use."""
    return frozenset(word.lower() for word in FREQUENCY_LISTS["passwords"])


def check_new(password: str) -> None:
    """Refuse a password that is short or on the common-password list."""
    if len(password) < MIN_LENGTH:
        raise InvalidRequest(f"Passwords are at least {MIN_LENGTH} characters", param="password")
    if password.lower() in _common():
        raise InvalidRequest(
            "This password is on a list of common passwords; choose another", param="password"
        )


def hash_blocking(password: str) -> str:
    """A hash computed on this thread: for the command line, where no loop serves anyone."""
    check_new(password)
    return _hasher.hash(password)


class Passwords:
    """Hash and verify on `threads` threads of their own."""

    def __init__(self, threads: int) -> None:
        self._pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="argon2")
        # Verified against when the email is unknown, so both answers cost the same; made
        # now, in the background, so not even the first unknown email costs more.
        self._dummy = self._pool.submit(_hasher.hash, "not a password of anyone's")

    async def hash(self, password: str) -> str:
        return await self._run(_hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether `password` matches; with no hash (unknown user) the same work, False."""
        if password_hash is None:
            await self._run(_check, await asyncio.wrap_future(self._dummy), password)
            return False
        return await self._run(_check, password_hash, password)

    @staticmethod
    def needs_rehash(password_hash: str) -> bool:
        return _hasher.check_needs_rehash(password_hash)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _run(self, fn: Callable[..., T], *args: str) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)


def _check(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
