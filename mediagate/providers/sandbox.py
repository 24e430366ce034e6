"""The built-in provider for aio_test_ keys: renders placeholders locally.

It behaves like an upstream API: submit returns an id at once, poll reports `pending`
until the simulated latency has passed, results are fetched by reference. Its state lives
in its own table, so it survives worker restarts like a real provider would.
"""

import asyncio
from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from mediagate.core.clock import utcnow
from mediagate.core.db import Database
from mediagate.core.ids import new_id
from mediagate.media.storage import Storage
from mediagate.providers.base import PollResult, ProviderRequest
from mediagate.providers.models import SandboxJob
from mediagate.providers.sandbox_render import VIEWS, render

FAIL_MARKER = "[sandbox:fail]"
MULTI_SHOT = "ai-multi-shot"


class SandboxProvider:
    name = "sandbox"
    supports_lookup = True
    sends_callbacks = False

    def __init__(
        self, db: Database, storage: Storage, *, latency_s: float, call_delay_s: float = 0.0
    ) -> None:
        self.db = db
        self.storage = storage
        self.latency = timedelta(seconds=latency_s)
        self.call_delay_s = call_delay_s

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
        count = (
            len(VIEWS) if request.type == MULTI_SHOT else int(request.params.get("num_images", 1))
        )
        return PollResult("completed", outputs=[f"sandbox://{job.id}/{i}" for i in range(count)])

    async def fetch_result(self, output: str, request: ProviderRequest) -> bytes:
        await self._delay()
        parts = urlsplit(output)
        if parts.scheme != "sandbox":
            raise ValueError(f"not a sandbox result: {output}")
        index = int(parts.path.lstrip("/"))
        params = request.params
        multi_shot = request.type == MULTI_SHOT
        total = len(VIEWS) if multi_shot else int(params.get("num_images", 1))
        references = [
            data
            for ref in request.prepared.get("references", [])
            if (data := await self.storage.get(ref["key"])) is not None
        ]
        aspect_ratio = params.get("aspect_ratio", "1:1")
        if aspect_ratio == "auto":
            aspect_ratio = request.prepared.get("aspect_ratio", "1:1")
        return await asyncio.to_thread(
            render,
            prompt=params.get("prompt", ""),
            aspect_ratio=aspect_ratio,
            resolution=params.get("resolution", "1k"),
            index=index,
            total=total,
            references=references,
            view=VIEWS[index] if multi_shot else None,
        )

    async def _delay(self) -> None:
        if self.call_delay_s > 0:
            await asyncio.sleep(self.call_delay_s)
