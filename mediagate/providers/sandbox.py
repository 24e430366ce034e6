"""The built-in provider for aio_test_ keys: renders placeholders locally.

It behaves like an upstream API: submit returns an id at once, poll reports `pending`
until the simulated latency has passed, results are fetched by reference. Its state lives
in its own table, so it survives worker restarts like a real provider would.

Image work runs on a small bounded pool of threads (render_pool.py). The polls that find
a job done decode each reference once, shrink it to the most any output draws it at,
and keep those thumbnails in storage (keys in the job row) before answering `completed`;
every output is then drawn from the thumbnails, however many images were asked for.
"""

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from PIL import Image
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from mediagate.core.clock import utcnow
from mediagate.core.db import Database
from mediagate.core.ids import new_id
from mediagate.media.storage import Storage
from mediagate.providers.base import PollResult, ProviderRequest
from mediagate.providers.errors import ProviderRejected, ProviderRetryable
from mediagate.providers.models import SandboxJob
from mediagate.providers.render_pool import RenderBusy, RenderPool
from mediagate.providers.sandbox_render import (
    VIEWS,
    output_size,
    reference_box,
    render,
    thumbnail,
)
from mediagate.providers.sandbox_video import render_video, video_size

FAIL_MARKER = "[sandbox:fail]"
MULTI_SHOT = "ai-multi-shot"
BUSY_RETRY_S = 2.0
VIDEO_FRAMES = 2
"""A video draws at most two references: its first and its last frame."""
VIDEO_RESOLUTION = "720p"
VIDEO_DURATION_S = 5.0
THUMBNAIL_BUDGET_S = 4.0
"""Decoding done by one poll before it answers `pending` and keeps the rest for the next
(one reference at the decode cap takes about a second, two on a loaded machine)."""

Thumbnailer = Callable[[bytes, tuple[int, int]], Image.Image]
"""Decodes one reference and shrinks it to fit a box (a seam: tests count the decodes)."""


class SandboxProvider:
    name = "sandbox"
    supports_lookup = True
    sends_callbacks = False

    def __init__(
        self,
        db: Database,
        storage: Storage,
        *,
        pool: RenderPool,
        latency_s: float,
        call_delay_s: float = 0.0,
        thumbnailer: Thumbnailer = thumbnail,
        thumbnail_budget_s: float = THUMBNAIL_BUDGET_S,
    ) -> None:
        self.db = db
        self.storage = storage
        self.pool = pool
        self.latency = timedelta(seconds=latency_s)
        self.call_delay_s = call_delay_s
        self.thumbnailer = thumbnailer
        self.thumbnail_budget_s = thumbnail_budget_s

    async def submit(self, request: ProviderRequest) -> str:
        await self._delay()
        now = utcnow()
        job = SandboxJob(
            id=new_id("sbx", 16),
            reference=request.reference,
            request={"model": request.model, "type": request.type, "params": request.params},
            submitted_at=now,
            ready_at=now + self.latency,
        )
        try:
            async with self.db.write() as session:
                session.add(job)
        except IntegrityError:
            # Same reference submitted again: like Kling's external_task_id, answer with
            # the job we already have instead of creating (and billing) a second one.
            found = await self.lookup(request)
            if found is None:
                raise
            return found
        return job.id

    async def lookup(self, request: ProviderRequest) -> str | None:
        async with self.db.read() as session:
            return await session.scalar(
                select(SandboxJob.id).where(SandboxJob.reference == request.reference)
            )

    async def poll(self, upstream_id: str, request: ProviderRequest) -> PollResult:
        await self._delay()
        async with self.db.read() as session:
            job = await session.get(SandboxJob, upstream_id)
        if job is None:
            return PollResult(
                "failed", error_type="provider_error", error_message="Unknown sandbox job"
            )
        if job.cancelled_at is not None:
            return PollResult(
                "failed", error_type="cancelled", error_message="The sandbox job was cancelled"
            )
        if utcnow() < job.ready_at:
            return PollResult("pending")
        if FAIL_MARKER in request.params.get("prompt", ""):
            return PollResult(
                "failed",
                error_type="generation_failed",
                error_message=(
                    f"The sandbox failed this task on purpose (the prompt contains {FAIL_MARKER})"
                ),
            )
        if await self._thumbnails(job, request, budget_s=self.thumbnail_budget_s) is None:
            return PollResult("pending")  # still "generating": more references to decode
        return PollResult(
            "completed", outputs=[f"sandbox://{job.id}/{i}" for i in range(_count(request))]
        )

    async def cancel(self, upstream_id: str, request: ProviderRequest, *, force: bool) -> bool:
        """Like a queue that drops what it has not finished: a job before its `ready_at`
        is stopped (one conditional UPDATE, so it never also finishes); a finished one
        is not."""
        now = utcnow()
        async with self.db.write() as session:
            stopped = await session.execute(
                update(SandboxJob)
                .where(
                    SandboxJob.id == upstream_id,
                    SandboxJob.cancelled_at.is_(None),
                    SandboxJob.ready_at > now,
                )
                .values(cancelled_at=now)
            )
        return bool(stopped.rowcount)  # type: ignore[attr-defined]

    async def save_result(
        self, output: str, request: ProviderRequest, dest: Path, *, max_bytes: int
    ) -> None:
        """Render the result into `dest` (a sandbox result is small: a few hundred KB)."""
        data = await self._render_result(output, request)
        if len(data) > max_bytes:
            raise ProviderRejected(
                self.name, f"the result is over this gateway's cap of {max_bytes:,} bytes"
            )
        await asyncio.to_thread(dest.write_bytes, data)

    async def _render_result(self, output: str, request: ProviderRequest) -> bytes:
        await self._delay()
        parts = urlsplit(output)
        if parts.scheme != "sandbox":
            raise ValueError(f"not a sandbox result: {output}")
        async with self.db.read() as session:
            job = await session.get(SandboxJob, parts.netloc)
        if job is None:
            raise ProviderRejected(self.name, "Unknown sandbox job", error_type="provider_error")
        index = int(parts.path.lstrip("/"))
        if request.output == "video":
            return await self._video(job, request)
        multi_shot = request.type == MULTI_SHOT
        total = len(VIEWS) if multi_shot else int(request.params.get("num_images", 1))
        aspect_ratio, resolution = _output_shape(request)
        size = _output_dims(request)
        # Made by the poll that found the job done; only a job polled by an older version
        # (or a concurrent fetch of one) makes them here.
        keys = await self._thumbnails(job, request, budget_s=None) or []
        async with self._slot():
            thumbnails = [data for key in keys if (data := await self.storage.get(key))]
            return await self.pool.run(
                _draw,
                thumbnails,
                prompt=request.params.get("prompt", ""),
                aspect_ratio=aspect_ratio,
                resolution=resolution,
                size=size,
                index=index,
                total=total,
                view=VIEWS[index] if multi_shot else None,
            )

    async def _thumbnails(
        self, job: SandboxJob, request: ProviderRequest, *, budget_s: float | None
    ) -> list[str] | None:
        """Storage keys of the job's reference thumbnails, or None while some are still
        to be made. Each reference is decoded once, one at a time, holding one render
        slot; once `budget_s` has passed, what is made is kept and the caller comes back
        for the rest, so ten large references never hold one step past its lease."""
        references = request.prepared.get("references", [])
        multi_shot = request.type == MULTI_SHOT
        if multi_shot:
            references = references[:1]  # every view shows the one subject
        made: list[str | None] = list(job.request.get("thumbnails", []))
        if request.output == "video":
            references = references[:VIDEO_FRAMES]
        if len(made) < len(references):
            box = _reference_box(request, len(references))
            loop = asyncio.get_running_loop()
            async with self._slot():
                started = loop.time()
                for ref in references[len(made) :]:
                    made.append(await self._thumbnail(f"{job.id}_ref{len(made)}.png", ref, box))
                    if budget_s is not None and loop.time() - started >= budget_s:
                        break
            async with self.db.write() as session:
                row = await session.get(SandboxJob, job.id)
                if row is not None:
                    row.request = {**row.request, "thumbnails": made}
        if len(made) < len(references):
            return None
        return [key for key in made if key is not None]

    async def _video(self, job: SandboxJob, request: ProviderRequest) -> bytes:
        """The clip: `images[0]` (and `images[1]`) as its first (and last) frame."""
        keys = await self._thumbnails(job, request, budget_s=None) or []
        async with self._slot():
            thumbnails = [data for key in keys if (data := await self.storage.get(key))]
            return await self.pool.run(
                _draw_video,
                thumbnails,
                prompt=request.params.get("prompt", ""),
                aspect_ratio=_output_shape(request)[0],
                resolution=request.params.get("resolution", VIDEO_RESOLUTION),
                duration_s=float(request.params.get("duration", VIDEO_DURATION_S)),
            )

    async def _thumbnail(
        self, key: str, reference: dict[str, Any], box: tuple[int, int]
    ) -> str | None:
        """Decode one stored reference and keep it at `box` under `key` (None: it is gone)."""
        data = await self.storage.get(reference["key"])
        if data is None:
            return None
        await self.storage.put(key, await self.pool.run(self._shrink, data, box))
        return key

    def _shrink(self, data: bytes, box: tuple[int, int]) -> bytes:
        out = io.BytesIO()
        self.thumbnailer(data, box).save(out, format="PNG", compress_level=1)
        return out.getvalue()

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """A render slot. A busy pool is the sandbox's 429: the step comes back later,
        without counting as an error."""
        try:
            async with self.pool.slot():
                yield
        except RenderBusy as exc:
            raise ProviderRetryable(self.name, str(exc), retry_after_s=BUSY_RETRY_S) from exc

    async def _delay(self) -> None:
        if self.call_delay_s > 0:
            await asyncio.sleep(self.call_delay_s)


def _output_shape(request: ProviderRequest) -> tuple[str, str]:
    """(aspect ratio, resolution) of the outputs; `auto` as resolved at prepare."""
    aspect_ratio = request.params.get("aspect_ratio", "1:1")
    if aspect_ratio == "auto":
        aspect_ratio = request.prepared.get("aspect_ratio", "1:1")
    return aspect_ratio, request.params.get("resolution", "1k")


def _count(request: ProviderRequest) -> int:
    if request.output == "video":
        return 1
    if request.type == MULTI_SHOT:
        return len(VIEWS)
    return int(request.params.get("num_images", 1))


def _reference_box(request: ProviderRequest, count: int) -> tuple[int, int]:
    """The most a reference is drawn at: a video frame fills (covers) the frame, so it
    is kept at the frame's long side both ways."""
    if request.output == "video":
        aspect_ratio = _output_shape(request)[0]
        side = max(video_size(aspect_ratio, request.params.get("resolution", VIDEO_RESOLUTION)))
        return side, side
    size = _output_dims(request)
    return reference_box(size, count, multi_shot=request.type == MULTI_SHOT)


def _draw_video(thumbnails: list[bytes], **params: Any) -> bytes:
    frames = []
    for data in thumbnails[:VIDEO_FRAMES]:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            frames.append(image.convert("RGB"))
    first = frames[0] if frames else None
    last = frames[1] if len(frames) > 1 else None
    return render_video(first=first, last=last, **params)


def _output_dims(request: ProviderRequest) -> tuple[int, int]:
    """Pixel size of the outputs: the model's declared `[sandbox]` size (prepare puts it
    in `output_size`), else about 1 MP (1k) or 4 MP (2k) at the aspect ratio."""
    declared = request.prepared.get("output_size")
    if declared:
        return int(declared[0]), int(declared[1])
    return output_size(*_output_shape(request))


def _draw(thumbnails: list[bytes], **params: Any) -> bytes:
    """One output, drawn from the references' thumbnails (small PNGs we made)."""
    references = []
    for data in thumbnails:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            references.append(image.convert("RGB"))
    return render(references=references, **params)
