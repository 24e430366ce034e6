"""The `output` of the public task object: each stored result with its URL, its
thumbnail or poster, and when it expires; once the retention sweeper deleted the files,
the same outputs marked expired, without URLs (GET of the old URL answers 410)."""

from datetime import datetime
from typing import Any

from mediagate.core.clock import isoformat


def task_output(
    images: list[dict[str, Any]] | None,
    videos: list[dict[str, Any]] | None,
    *,
    files_base: str,
    expires_at: datetime | None,
    files_expired_at: datetime | None,
) -> dict[str, list[dict[str, Any]]]:
    expired = files_expired_at is not None
    shown = Shown(files_base, isoformat(expires_at or files_expired_at), expired)
    return {
        "images": [shown.image(i) for i in images or []],
        "videos": [shown.video(v) for v in videos or []],
    }


class Shown:
    """How one task's outputs are shown: their URLs (none once expired) and expiry."""

    def __init__(self, files_base: str, expires_at: str | None, expired: bool) -> None:
        self.files_base = files_base
        self.expires_at = expires_at
        self.expired = expired

    def url(self, key: str) -> str | None:
        return None if self.expired else f"{self.files_base}/files/{key}"

    def still(self, item: dict[str, Any]) -> dict[str, Any]:
        return {"url": self.url(item["key"]), "width": item["width"], "height": item["height"]}

    def image(self, item: dict[str, Any]) -> dict[str, Any]:
        thumb = item.get("thumb")
        return {
            **self.still(item),
            "thumbnail": self.still(thumb) if thumb else None,
            "expires_at": self.expires_at,
            "expired": self.expired,
        }

    def video(self, video: dict[str, Any]) -> dict[str, Any]:
        return {
            **self.still(video),
            "duration_s": video["duration_s"],
            "content_type": video["content_type"],
            "poster": self.still(video["poster"]),
            "expires_at": self.expires_at,
            "expired": self.expired,
        }
