"""A few threads for the sandbox's image work: off the event loop, and only so many at once.

Decoding and drawing hold the GIL for most of their time and take up to a few hundred MB
each; without a bound, N sandbox tasks would take N times the memory and starve the loop
of CPU. A step waits a little for a free slot, then is told to come back later, like an
upstream that answers 429, so a queue of renders never outlives a step's lease.
"""

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import ParamSpec, TypeVar

THREAD_PREFIX = "sandbox-render"
SLOT_WAIT_S = 5.0
"""Longest a step waits for a slot. With the work it then does (a few seconds at most for
ten references at the decode cap) it stays inside a step's share of the default lease."""

P = ParamSpec("P")
T = TypeVar("T")


class RenderBusy(Exception):
    """Every render slot stayed taken while we waited."""


class RenderPool:
    def __init__(self, size: int, *, wait_s: float = SLOT_WAIT_S) -> None:
        if size < 1:
            raise ValueError("a render pool needs at least one thread")
        self.size = size
        self.wait_s = wait_s
        self._slots = asyncio.Semaphore(size)
        self._threads = ThreadPoolExecutor(max_workers=size, thread_name_prefix=THREAD_PREFIX)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """One of the `size` slots for as long as the block runs; RenderBusy if none frees
        up within `wait_s`. Take it before loading inputs, so waiters hold no image bytes."""
        try:
            async with asyncio.timeout(self.wait_s):
                await self._slots.acquire()
        except TimeoutError:
            raise RenderBusy(f"all {self.size} render slots busy for {self.wait_s:g} s") from None
        try:
            yield
        finally:
            self._slots.release()

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` on one of the pool's threads (call it holding a slot)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, functools.partial(fn, *args, **kwargs))
