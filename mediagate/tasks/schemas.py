"""Response models of the task routes, for the OpenAPI schema (the JSON itself is built
by `service.task_as_data` and the route)."""

from typing import Literal

from pydantic import Field

from mediagate.core.schemas import Strict

ApiStatus = Literal["IN_PROGRESS", "completed", "failed", "cancelled"]


class Submission(Strict):
    task_id: str
    status: ApiStatus


class OutputStill(Strict):
    url: str | None = Field(description="Absolute URL of the stored file; null once expired")
    width: int
    height: int


EXPIRES = "When the stored files are deleted (ISO 8601, UTC); null: kept forever"
EXPIRED = "The files were deleted (retention): the URLs are null and the old ones answer 410"


class OutputImage(Strict):
    url: str | None = Field(description="Absolute URL of the stored result file; null once expired")
    width: int
    height: int
    thumbnail: OutputStill | None = Field(
        description="A small WebP copy (longest side 384 px) for galleries; null for "
        "results stored before thumbnails existed"
    )
    expires_at: str | None = Field(description=EXPIRES)
    expired: bool = Field(description=EXPIRED)


class OutputVideo(Strict):
    url: str | None = Field(description="Absolute URL of the stored video file; null once expired")
    width: int
    height: int
    duration_s: float
    content_type: str = Field(description="video/mp4, video/quicktime or video/webm")
    poster: OutputStill = Field(description="The first frame as a JPEG")
    expires_at: str | None = Field(description=EXPIRES)
    expired: bool = Field(description=EXPIRED)


class TaskOutput(Strict):
    images: list[OutputImage] = Field(description="Empty until the task is completed")
    videos: list[OutputVideo] = Field(
        description="A video model's results; empty until the task is completed"
    )


class TaskError(Strict):
    type: str
    message: str


class TaskData(Strict):
    task_id: str
    model: str
    type: str
    status: ApiStatus
    created_at: str = Field(description="ISO 8601, UTC")
    completed_at: str | None = Field(description="ISO 8601, UTC; null until the task ends")
    credits: int = Field(
        description="Held while in progress, charged when completed, 0 when failed or cancelled"
    )
    output: TaskOutput
    error: TaskError | None = Field(
        description="Why the task failed (or `cancelled`, when a client cancelled it); null "
        "otherwise"
    )


class TaskList(Strict):
    tasks: list[TaskData] = Field(description="Newest first")
    next_cursor: str | None = Field(
        description="Opaque: pass it back as `cursor` for the next page; null on the last"
    )
