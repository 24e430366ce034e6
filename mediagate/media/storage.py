"""Where result files live: the data directory, or an S3-compatible bucket that every
machine shares (selected by MEDIAGATE_STORAGE_BACKEND)."""

import asyncio
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from mediagate.core.settings import Settings
from mediagate.media.videos import CONTAINERS, sniff_container

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

KEY_RE = re.compile(r"^[A-Za-z0-9_-]{16,128}\.(png|jpg|webp|mp4|mov|webm)$")
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}
VIDEO_TYPES = {fmt: content_type for fmt, (_, content_type, _) in CONTAINERS.items()}
MISSING = {"404", "NoSuchKey", "NotFound"}
S3_DELETE_BATCH = 1000
"""Keys per DeleteObjects request: S3's maximum
(https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html)."""
S3_LIST_PAGE = 1000
"""Keys per ListObjectsV2 page: S3's maximum (and default) MaxKeys
(https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html)."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    modified_at: datetime


class Storage(Protocol):
    async def put(self, key: str, data: bytes) -> None: ...

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        """Store the file at `path` (which may be moved away) without reading it whole."""
        ...

    async def get(self, key: str) -> bytes | None: ...

    async def delete(self, key: str) -> None:
        """Remove `key`; nothing happens if it does not exist."""
        ...

    def local_path(self, key: str) -> Path | None:
        """A file on this machine holding `key`, if the backend is local."""
        ...

    async def public_url(self, key: str) -> str | None:
        """A URL clients may fetch `key` from directly (presigned), or None when we serve
        the file ourselves (or it does not exist)."""
        ...

    async def delete_many(self, keys: list[str]) -> None:
        """Delete every key that exists; a key already gone is not an error (a sweep that
        crashed before it marked its rows deletes the same keys again)."""
        ...

    async def list_keys(self, prefix: str, *, start_after: str, limit: int) -> list[StoredObject]:
        """Up to `limit` stored keys starting with `prefix`, in key order, after
        `start_after` ("" from the first), with their last change."""
        ...


def valid_key(key: str) -> bool:
    return KEY_RE.match(key) is not None


def sniffed_type(head: bytes) -> str | None:
    """The image or video type the bytes' own magic says (the first 12 bytes are enough),
    or None.

    Files are typed by what they are, not by their key's extension, so bytes that are not
    one of our image formats are never served as something a browser would render.
    """
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    container = sniff_container(head)
    return VIDEO_TYPES[container] if container else None


def build_storage(settings: Settings) -> "LocalStorage | S3Storage":
    if settings.storage_backend == "s3":
        return S3Storage.from_settings(settings)
    return LocalStorage(settings.files_dir)


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

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        if not valid_key(key):
            raise ValueError(f"invalid storage key {key!r}")
        await asyncio.to_thread(self._move, key, path)

    def _move(self, key: str, path: Path) -> None:
        # A rename when the scratch file is on the same disk; else a copy beside the
        # target first, so a reader still never sees half a file.
        try:
            os.replace(path, self.root / key)
            return
        except OSError:
            pass
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        os.close(fd)
        try:
            shutil.copyfile(path, tmp)
            os.replace(tmp, self.root / key)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def get(self, key: str) -> bytes | None:
        path = self.local_path(key)
        return None if path is None else await asyncio.to_thread(path.read_bytes)

    async def delete(self, key: str) -> None:
        if valid_key(key):
            await asyncio.to_thread((self.root / key).unlink, missing_ok=True)

    def local_path(self, key: str) -> Path | None:
        if not valid_key(key):
            return None
        path = self.root / key
        return path if path.is_file() else None

    async def public_url(self, key: str) -> str | None:
        return None

    async def delete_many(self, keys: list[str]) -> None:
        await asyncio.to_thread(self._delete, [k for k in keys if valid_key(k)])

    def _delete(self, keys: list[str]) -> None:
        for key in keys:
            (self.root / key).unlink(missing_ok=True)

    async def list_keys(self, prefix: str, *, start_after: str, limit: int) -> list[StoredObject]:
        return await asyncio.to_thread(self._list, prefix, start_after, limit)

    def _list(self, prefix: str, start_after: str, limit: int) -> list[StoredObject]:
        # One directory: names are read whole (no order on disk), only `limit` are stat'ed.
        with os.scandir(self.root) as entries:
            names = sorted(
                e.name
                for e in entries
                if e.name.startswith(prefix) and e.name > start_after and valid_key(e.name)
            )
        found = []
        for name in names[:limit]:
            try:
                mtime = (self.root / name).stat().st_mtime
            except FileNotFoundError:
                continue  # deleted meanwhile
            found.append(StoredObject(name, datetime.fromtimestamp(mtime, UTC)))
        return found


STREAM_CHUNK = 256 * 1024


class RangeNotSatisfiable(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"range not satisfiable (the file has {size} bytes)")
        self.size = size


@dataclass(frozen=True)
class S3Object:
    chunks: Iterator[bytes]
    """Blocking reads: iterate in a thread (Starlette's StreamingResponse does)."""
    length: int
    content_type: str | None
    content_range: str | None
    """Set when a range was served (answer 206)."""


class S3Storage:
    """An S3-compatible bucket through boto3 (blocking calls run in threads). A put is one
    whole-object PUT, so readers never see half a file and a retry simply overwrites."""

    def __init__(
        self, client: "S3Client", bucket: str, *, prefix: str, redirect: bool, presign_ttl_s: int
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.redirect = redirect
        self.presign_ttl_s = presign_ttl_s

    @classmethod
    def from_settings(cls, settings: Settings) -> "S3Storage":
        assert settings.s3_bucket is not None  # Settings refuses s3 without a bucket
        config = Config(
            signature_version="s3v4",
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
            max_pool_connections=32,
            # Path-style URLs work with every S3-compatible server; AWS takes both.
            s3={"addressing_style": "path" if settings.s3_endpoint_url else "auto"},
        )
        client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=settings.s3_secret_access_key,
            config=config,
        )
        return cls(
            client,
            settings.s3_bucket,
            prefix=settings.s3_prefix,
            redirect=settings.s3_serve == "redirect",
            presign_ttl_s=settings.s3_presign_ttl_s,
        )

    def _object(self, key: str) -> str:
        return f"{self.prefix}{key}"

    async def put(self, key: str, data: bytes) -> None:
        if not valid_key(key):
            raise ValueError(f"invalid storage key {key!r}")
        image_type = sniffed_type(data[:12])
        await asyncio.to_thread(
            self.client.put_object,
            Bucket=self.bucket,
            Key=self._object(key),
            Body=data,
            # What a presigned redirect serves (MEDIAGATE_S3_SERVE=redirect): the bytes' own
            # type, and anything not an image only as a download.
            ContentType=image_type or "application/octet-stream",
            ContentDisposition="inline" if image_type else "attachment",
            CacheControl="public, max-age=31536000, immutable",
        )

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        """boto3's managed upload: multipart past 8 MiB, parts read from the file."""
        if not valid_key(key):
            raise ValueError(f"invalid storage key {key!r}")
        await asyncio.to_thread(
            self.client.upload_file,
            str(path),
            self.bucket,
            self._object(key),
            ExtraArgs={
                "ContentType": content_type,
                "ContentDisposition": "inline",
                "CacheControl": "public, max-age=31536000, immutable",
            },
        )

    async def get(self, key: str) -> bytes | None:
        if not valid_key(key):
            return None
        return await asyncio.to_thread(self._read, key)

    async def delete(self, key: str) -> None:
        """S3's DeleteObject succeeds whether or not the key exists (204 either way)."""
        if valid_key(key):
            await asyncio.to_thread(
                self.client.delete_object, Bucket=self.bucket, Key=self._object(key)
            )

    def _read(self, key: str) -> bytes | None:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._object(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in MISSING:
                return None
            raise
        return answer["Body"].read()

    async def open_object(self, key: str, byte_range: str | None) -> "S3Object | None":
        """The object (or the part `byte_range`, an HTTP Range value, asks for) as a stream
        of chunks, for serving without holding it whole; None if there is no such key."""
        if not valid_key(key):
            return None
        return await asyncio.to_thread(self._open, key, byte_range)

    def _open(self, key: str, byte_range: str | None) -> "S3Object | None":
        try:
            if byte_range:
                answer = self.client.get_object(
                    Bucket=self.bucket, Key=self._object(key), Range=byte_range
                )
            else:
                answer = self.client.get_object(Bucket=self.bucket, Key=self._object(key))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in MISSING:
                return None
            if code == "InvalidRange":
                raise RangeNotSatisfiable(self._size(key)) from exc
            raise
        return S3Object(
            chunks=answer["Body"].iter_chunks(STREAM_CHUNK),
            length=answer["ContentLength"],
            content_type=answer.get("ContentType"),
            content_range=answer.get("ContentRange"),
        )

    def _size(self, key: str) -> int:
        return int(
            self.client.head_object(Bucket=self.bucket, Key=self._object(key))["ContentLength"]
        )

    def local_path(self, key: str) -> Path | None:
        return None

    async def public_url(self, key: str) -> str | None:
        if not self.redirect or not valid_key(key):
            return None
        return await asyncio.to_thread(self._presign_existing, key)

    async def delete_many(self, keys: list[str]) -> None:
        keys = [k for k in keys if valid_key(k)]
        for start in range(0, len(keys), S3_DELETE_BATCH):
            await asyncio.to_thread(self._delete, keys[start : start + S3_DELETE_BATCH])

    def _delete(self, keys: list[str]) -> None:
        # S3 answers a key that does not exist as deleted; Quiet: only failures come back.
        answer = self.client.delete_objects(
            Bucket=self.bucket,
            Delete={"Objects": [{"Key": self._object(k)} for k in keys], "Quiet": True},
        )
        failed = [e for e in answer.get("Errors", []) if e.get("Code") not in MISSING]
        if failed:
            first = failed[0]
            raise OSError(
                f"S3 could not delete {len(failed)} of {len(keys)} objects "
                f"(first: {first.get('Key')}: {first.get('Code')} {first.get('Message')})"
            )

    async def list_keys(self, prefix: str, *, start_after: str, limit: int) -> list[StoredObject]:
        return await asyncio.to_thread(self._list, prefix, start_after, limit)

    def _list(self, prefix: str, start_after: str, limit: int) -> list[StoredObject]:
        found: list[StoredObject] = []
        after = self._object(start_after) if start_after else ""
        while len(found) < limit:
            page = self.client.list_objects_v2(
                Bucket=self.bucket,
                Prefix=self._object(prefix),
                StartAfter=after,
                MaxKeys=min(S3_LIST_PAGE, limit - len(found)),
            )
            contents = page.get("Contents", [])
            for item in contents:
                key = item["Key"].removeprefix(self.prefix)
                if valid_key(key):
                    found.append(StoredObject(key, item["LastModified"].astimezone(UTC)))
            if not page.get("IsTruncated") or not contents:
                break
            after = contents[-1]["Key"]
        return found

    def _presign_existing(self, key: str) -> str | None:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._object(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in MISSING:
                return None
            raise
        return self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self._object(key)},
            ExpiresIn=self.presign_ttl_s,
        )
