"""Load and check a task's reference images before any provider sees them."""

import asyncio
import math
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from mediagate.catalog.spec import InputRules
from mediagate.media.fetcher import FetchError, SafeFetcher
from mediagate.media.images import ImageInfo, ImageRejected, check_reference
from mediagate.media.storage import Storage, valid_key

FETCH_REASONS = {
    "bad_url": "invalid URL",
    "blocked_address": "blocked address",
    "unreachable": "unreachable",
    "timed_out": "timed out",
    "too_large": "too large",
    "http_error": "unreachable",
    "too_many_redirects": "unreachable",
}


@dataclass(frozen=True)
class Reference:
    index: int
    data: bytes
    info: ImageInfo


class ReferenceError(Exception):
    """One or more reference images are unusable; the message names each by index."""


EXAMPLES_PATH = "/static/examples/"
EXAMPLE_NAME = re.compile(r"^[a-z0-9-]{1,64}\.(png|jpg|webp)$")


class ReferenceLoader:
    def __init__(
        self,
        fetcher: SafeFetcher,
        storage: Storage,
        own_origins: set[str],
        examples: Path | None = None,
    ) -> None:
        self.fetcher = fetcher
        self.storage = storage
        self.own_origins = {o.rstrip("/").lower() for o in own_origins}
        self.examples = examples
        """The folder behind our own /static/examples/ URLs (the docs' example images)."""

    def _own_path(self, url: str, prefix: str) -> str | None:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}".lower()
        if origin not in self.own_origins or not parts.path.startswith(prefix):
            return None
        return parts.path.removeprefix(prefix)

    def own_file(self, url: str) -> str | None:
        """The storage key behind one of our own file URLs (uploads), if `url` is one."""
        key = self._own_path(url, "/files/")
        return key if key is not None and valid_key(key) else None

    def own_example(self, url: str) -> Path | None:
        """The file behind one of our own example-image URLs, if `url` is one."""
        name = self._own_path(url, EXAMPLES_PATH)
        if self.examples is None or name is None or not EXAMPLE_NAME.match(name):
            return None
        return self.examples / name

    async def load(self, url: str, rules: InputRules) -> bytes:
        example = self.own_example(url)
        if example is not None:
            try:
                return await asyncio.to_thread(example.read_bytes)
            except FileNotFoundError:
                raise FetchError("unreachable", "no such example image") from None
        key = self.own_file(url)
        if key is not None:
            data = await self.storage.get(key)
            if data is None:
                raise FetchError(
                    "unreachable", "no such uploaded file; uploads are deleted at their expires_at"
                )
            return data
        return (await self.fetcher.fetch(url, max_bytes=rules.max_bytes)).body

    async def load_all(self, urls: list[str], rules: InputRules) -> list[Reference]:
        """All references, fetched concurrently and checked; ReferenceError naming every
        unusable one (`images[3]: too small (...)`)."""
        results = await asyncio.gather(
            *(self._load_one(i, u, rules) for i, u in enumerate(urls)), return_exceptions=True
        )
        problems: list[str] = []
        references: list[Reference] = []
        for index, result in enumerate(results):
            if isinstance(result, FetchError):
                problems.append(
                    f"images[{index}]: {FETCH_REASONS[result.reason]} ({result.message})"
                )
            elif isinstance(result, ImageRejected):
                problems.append(f"images[{index}]: {result}")
            elif isinstance(result, BaseException):
                raise result
            else:
                references.append(result)
        if problems:
            raise ReferenceError("; ".join(problems))
        return references

    async def _load_one(self, index: int, url: str, rules: InputRules) -> Reference:
        data = await self.load(url, rules)
        return Reference(index, data, check_reference(data, rules))


def nearest_ratio(width: int, height: int, ratios: tuple[str, ...]) -> str:
    """The declared ratio closest to width:height (compared on a log scale)."""
    target = math.log(width / height)

    def distance(ratio: str) -> float:
        w, h = (int(x) for x in ratio.split(":"))
        return abs(math.log(w / h) - target)

    return min((r for r in ratios if ":" in r), key=distance)
