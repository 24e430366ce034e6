"""Where result files live. Local directory by default."""

import asyncio
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

KEY_RE = re.compile(r"^[A-Za-z0-9_-]{16,128}\.(png|jpg|webp)$")
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}


class Storage(Protocol):
    async def put(self, key: str, data: bytes) -> None: ...

    async def get(self, key: str) -> bytes | None: ...

    def local_path(self, key: str) -> Path | None:
        """A file on this machine holding `key`, if the backend is local."""
        ...


def valid_key(key: str) -> bool:
    return KEY_RE.match(key) is not None


def content_type(key: str) -> str:
    return CONTENT_TYPES[key.rsplit(".", 1)[1]]


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    async def put(self, key: str, data: bytes) -> None:
        if not valid_key(key):
            raise ValueError(f"invalid storage key {key!r}")
        await asyncio.to_thread(self._write, key, data)

    def _write(self, key: str, data: bytes) -> None:
        # Write then rename: a reader never sees half a file, a retry simply overwrites.
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, self.root / key)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def get(self, key: str) -> bytes | None:
        path = self.local_path(key)
        return None if path is None else await asyncio.to_thread(path.read_bytes)

    def local_path(self, key: str) -> Path | None:
        if not valid_key(key):
            return None
        path = self.root / key
        return path if path.is_file() else None
