"""The server's objects as read-only Python views (the raw JSON stays in `.data`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mediagate_client.errors import ResultsExpired

IN_PROGRESS = "IN_PROGRESS"
"""The one running status; every other value is final (`completed`, `failed`,
`cancelled`), as docs/api.md "Task status" explains."""


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time of the server (`2026-11-23T10:00:00Z`), or None."""
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Output:
    """One generated file: an image, or a video (with its poster)."""

    kind: str
    url: str | None
    """None once the server's retention deleted the file (`expired`)."""
    width: int | None
    height: int | None
    data: dict[str, Any]

    @property
    def expires_at(self) -> datetime | None:
        return parse_time(self.data.get("expires_at"))

    @property
    def expired(self) -> bool:
        """True once the server deleted the file (its retention time passed)."""
        return bool(self.data.get("expired")) or self.url is None


@dataclass(frozen=True)
class Upload:
    """An uploaded reference image: pass `url` in a model's `images`."""

    id: str
    url: str
    format: str
    bytes: int
    width: int
    height: int

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Upload:
        return cls(
            id=data["id"],
            url=data["url"],
            format=data["format"],
            bytes=data["bytes"],
            width=data["width"],
            height=data["height"],
        )


class TaskView:
    """A task as last read from the server (`refresh()` on a handle reads it again)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    @property
    def id(self) -> str:
        return str(self.data["task_id"])

    @property
    def status(self) -> str:
        return str(self.data["status"])

    @property
    def done(self) -> bool:
        """True once the task has ended, whichever way."""
        return self.status != IN_PROGRESS

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    @property
    def model(self) -> str | None:
        return self.data.get("model")

    @property
    def type(self) -> str | None:
        return self.data.get("type")

    @property
    def credits(self) -> int | None:
        return self.data.get("credits")

    @property
    def created_at(self) -> datetime | None:
        return parse_time(self.data.get("created_at"))

    @property
    def completed_at(self) -> datetime | None:
        return parse_time(self.data.get("completed_at"))

    @property
    def error(self) -> dict[str, Any] | None:
        """`{"type", "message"}` when the task failed, else None."""
        return self.data.get("error")

    @property
    def outputs(self) -> list[Output]:
        """The task's files, images then videos (empty until it completes)."""
        output = self.data.get("output") or {}
        return [
            Output(
                kind=kind.removesuffix("s"),
                url=item.get("url"),
                width=item.get("width"),
                height=item.get("height"),
                data=item,
            )
            for kind in ("images", "videos")
            for item in output.get(kind) or []
        ]

    def downloadable(self) -> list[Output]:
        """The outputs to download; ResultsExpired if the server deleted any of them."""
        gone = [o for o in self.outputs if o.expired]
        if gone:
            when = gone[0].data.get("expires_at") or "its retention time"
            raise ResultsExpired(
                f"task {self.id}: {len(gone)} of its {len(self.outputs)} results were deleted "
                f"by the server's retention ({when}); generate them again"
            )
        return self.outputs

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.status}>"
