"""The steps of a task. Each is short, reads the task row it was handed, and returns what
to write next; the runner does the (fenced) writing.

prepare → submit → [submitting] → poll → store → finalize
"""

import asyncio
import hashlib
import hmac
import logging
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from mediagate.catalog.loader import Catalog
from mediagate.catalog.spec import OutputKind, RouteTask
from mediagate.core.settings import Settings
from mediagate.media.images import NotAnImage, inspect_image
from mediagate.media.references import ReferenceError, ReferenceLoader, nearest_ratio
from mediagate.media.storage import Storage
from mediagate.media.thumbnails import ThumbnailFailed, make_thumbnail
from mediagate.media.videos import NotAVideo, poster, probe_video
from mediagate.providers.base import ProviderRequest
from mediagate.providers.callbacks import callback_url
from mediagate.providers.errors import (
    ProviderAuthError,
    ProviderDeclined,
    ProviderError,
    ProviderRejected,
    ProviderRetryable,
)
from mediagate.providers.references import ReferencesNotAccepted, route_references
from mediagate.providers.registry import ProviderRegistry
from mediagate.runner.scratch import scratch_dir
from mediagate.tasks.models import Task

log = logging.getLogger("mediagate.runner")


@dataclass(frozen=True)
class Advance:
    """Move to `step` after `delay_s`, writing `values`."""

    step: str
    delay_s: float = 0.0
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Finish:
    status: Literal["completed", "failed"]
    error_type: str | None = None
    error_message: str | None = None


Outcome = Advance | Finish


class TaskFailed(Exception):
    """The task cannot succeed; it ends failed with this error for the client."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


class ActiveCount(Protocol):
    async def __call__(self, provider: str, *, besides: str) -> int:
        """Tasks currently accepted by (or being submitted to) `provider`, not counting one."""
        ...


class Checkpoint(Protocol):
    async def __call__(self, task: Task, values: dict[str, Any]) -> None:
        """Persist `values` now, keeping the lease (raises if the lease was lost)."""
        ...


@dataclass
class StepContext:
    settings: Settings
    catalog: Catalog
    providers: ProviderRegistry
    storage: Storage
    references: ReferenceLoader
    checkpoint: Checkpoint
    active_on: ActiveCount


Step = Callable[[StepContext, Task], Awaitable[Outcome]]


def provider_request(
    task: Task,
    callback: str | None = None,
    *,
    route: RouteTask | None = None,
    references: tuple[str, ...] | None = None,
    output: OutputKind = "image",
) -> ProviderRequest:
    return ProviderRequest(
        reference=task.id,
        model=task.model,
        type=task.type,
        params=task.params,
        prepared=task.prepared or {},
        callback_url=callback,
        route=route,
        references=references,
        output=output,
    )


def task_route(ctx: "StepContext", task: Task, provider: str) -> RouteTask | None:
    """The model's declaration for this task at `provider` (None: the sandbox)."""
    return ctx.catalog.get(task.model).route(provider, task.type)


def accepted_request(ctx: "StepContext", task: Task) -> ProviderRequest:
    """The request of a task its provider has (or may have) accepted."""
    assert task.provider is not None
    output = ctx.catalog.get(task.model).output
    return provider_request(task, route=task_route(ctx, task, task.provider), output=output)


def poll_delay(polls: int) -> float:
    """Poll soon at first, then back off to every 10 s."""
    return min(0.5 * (polls + 1), 10.0)


def next_poll(ctx: "StepContext", provider: str, polls: int) -> float:
    """When the provider will call back, polling is only a safety net for a lost callback."""
    delay = poll_delay(polls)
    if ctx.providers.get(provider).sends_callbacks and callback_url(ctx.settings, provider, ""):
        delay = max(delay, ctx.settings.callback_safety_poll_s)
    return delay


async def prepare(ctx: StepContext, task: Task) -> Outcome:
    """Fetch every reference image (SSRF-safe, concurrently), check it against the model's
    input rules, and keep a copy. Any unusable image fails the task before a provider
    is paid; the message names each image and what is wrong with it."""
    model = ctx.catalog.get(task.model)
    urls: list[str] = task.params.get("images", [])
    try:
        references = await ctx.references.load_all(urls, model.inputs)
    except ReferenceError as exc:
        raise TaskFailed("invalid_image", f"Reference image rejected: {exc}") from exc
    stored = []
    for ref in references:
        key = stored_file_key(ctx, task, "ref", ref.index, ref.info.extension)
        await ctx.storage.put(key, ref.data)
        stored.append({"key": key, "width": ref.info.width, "height": ref.info.height})
    prepared: dict[str, Any] = {"references": stored}
    if task.params.get("aspect_ratio") == "auto":
        ratios = tuple(str(r) for r in model.params["aspect_ratio"].enum or ())
        first = references[0].info if references else None
        prepared["aspect_ratio"] = (
            nearest_ratio(first.width, first.height, ratios) if first else "1:1"
        )
    size = model.sandbox.output_size(task.params)
    if size is not None:  # the sandbox draws test outputs at the size the model declares
        prepared["output_size"] = list(size)
    return Advance("submit", values={"prepared": prepared})


class RetryLater(Exception):
    """Run this same step again after `delay_s` (rate limits, 5xx, timeouts)."""

    def __init__(self, delay_s: float, reason: str) -> None:
        super().__init__(reason)
        self.delay_s = delay_s


async def submit(ctx: StepContext, task: Task) -> Outcome:
    """Send the task to the first provider on its route that takes it. A provider that
    refuses before accepting (5xx, timeout, rate limit, bad credentials, open breaker) is
    skipped for the next; once one has accepted, the task stays with it."""
    model = ctx.catalog.get(task.model)
    refusals: list[str] = []
    waits: list[float] = []
    final: str | None = None
    """The error type if no provider takes it, from one that could not (not the user's
    credentials, not a passing outage)."""
    for name in ctx.providers.routes(model, task.type, task.mode):
        breaker = ctx.providers.breaker(name)
        if not breaker.allows():
            refusals.append(f"{name}: circuit open")
            waits.append(breaker.cooldown_s)
            continue
        route = model.route(name, task.type)
        references = None
        if route is not None:
            problem = route.eligible(task.params, model.task_type(task.type).params)
            if problem is not None:
                refusals.append(f"{name}: {problem[1]}")
                final = final or "invalid_request"
                continue
            try:
                references = await route_references(
                    route,
                    task.params,
                    task.prepared or {},
                    ctx.storage,
                    ctx.settings.public_base_url,
                    max_bytes=model.inputs.max_bytes,
                )
            except ReferencesNotAccepted as exc:
                refusals.append(f"{name}: {exc}")
                final = final or "invalid_image"
                continue
        if not await _admit(ctx, task, name):
            refusals.append(f"{name}: {ctx.providers.max_active[name]} tasks already running there")
            waits.append(2.0)
            continue
        request = provider_request(
            task,
            callback_url(ctx.settings, name, task.id),
            route=route,
            references=references,
            output=model.output,
        )
        try:
            upstream_id = await ctx.providers.get(name).submit(request)
        except ProviderRejected as exc:
            breaker.record_success()  # it answered; the task is what it refused
            raise TaskFailed(exc.error_type, exc.message) from exc
        except ProviderAuthError as exc:
            log.error("PROVIDER %s: %s refused us: %s", exc.concern, name, exc.message)
            breaker.record_failure()
            refusals.append(f"{name}: unavailable")
            continue
        except ProviderDeclined as exc:
            breaker.record_success()  # it answered, and failed this task for good
            refusals.append(f"{name}: {exc.message}")
            final = final or exc.error_type
            continue
        except ProviderRetryable as exc:
            breaker.record_failure()
            refusals.append(f"{name}: {exc.message}")
            waits.append(exc.retry_after_s)
            continue
        breaker.record_success()
        return Advance(
            "poll",
            next_poll(ctx, name, 0),
            {"upstream_id": upstream_id, "polls": 0, "provider": name},
        )
    summary = "; ".join(refusals)
    if waits:
        raise RetryLater(max(1.0, min(waits)), f"every provider refused for now ({summary})")
    raise TaskFailed(
        final or "provider_unavailable", f"No provider could take the task ({summary})"
    )


async def _admit(ctx: StepContext, task: Task, name: str) -> bool:
    """Record that `name` is getting this task, unless it is at its concurrency limit.

    Persisting `submitting` first is what makes a crash after the provider accepts safe:
    the replay looks the task up instead of paying for it twice."""
    limit = ctx.providers.max_active.get(name)
    if limit is None:
        await ctx.checkpoint(task, {"step": "submitting", "provider": name})
        return True
    async with ctx.providers.admission[name]:
        if await ctx.active_on(name, besides=task.id) >= limit:
            return False
        await ctx.checkpoint(task, {"step": "submitting", "provider": name})
        return True


async def submitting(ctx: StepContext, task: Task) -> Outcome:
    """A replay of an interrupted submit: find out whether the provider took the task."""
    assert task.provider is not None
    provider = ctx.providers.get(task.provider)
    request = accepted_request(ctx, task)
    if not provider.supports_lookup or (request.route is not None and not request.route.lookup):
        # A synchronous provider (OpenAI Images) may have kept its answer before the
        # worker died: go on with it, it is paid for. Else never ask again: fail, unpaid.
        staged = getattr(provider, "staged", None)
        upstream_id = await staged(request) if staged is not None else None
        if upstream_id is not None:
            return Advance("poll", 0.0, {"upstream_id": upstream_id, "polls": 0})
        raise TaskFailed(
            "needs_reconciliation",
            f"Submitting to {task.provider} was interrupted and it cannot be looked up safely; "
            "the task was not resubmitted and nothing was charged",
        )
    upstream_id = await provider.lookup(request)
    if upstream_id is None:
        return Advance("submit")  # the provider never saw it: submitting again is safe
    return Advance("poll", 0.0, {"upstream_id": upstream_id, "polls": 0})


async def poll(ctx: StepContext, task: Task) -> Outcome:
    assert task.provider is not None and task.upstream_id is not None
    provider = ctx.providers.get(task.provider)
    result = await provider.poll(task.upstream_id, accepted_request(ctx, task))
    if result.state == "pending":
        return Advance(
            "poll", next_poll(ctx, task.provider, task.polls + 1), {"polls": task.polls + 1}
        )
    if result.state == "failed":
        raise TaskFailed(
            result.error_type or "generation_failed",
            result.error_message or f"{task.provider} could not generate this task",
        )
    if not result.outputs:
        raise TaskFailed("generation_failed", f"{task.provider} returned no results")
    return Advance("store", 0.0, {"outputs": result.outputs})


async def store(ctx: StepContext, task: Task) -> Outcome:
    """Copy every result into our storage, concurrently, each streamed through a scratch
    file (never whole in memory); the task completes only once all are stored (a retry
    rewrites the same files)."""
    assert task.provider is not None and task.outputs
    provider = ctx.providers.get(task.provider)
    request = accepted_request(ctx, task)
    video = request.output == "video"
    cap = ctx.settings.video_max_bytes if video else ctx.settings.result_max_bytes

    scratch_root = scratch_dir(ctx.settings)  # swept at a runner's start (killed workers)

    async def store_one(index: int, output: str) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="result-", dir=scratch_root) as scratch:
            path = Path(scratch) / "result"
            await provider.save_result(output, request, path, max_bytes=cap)
            if video:
                return await store_video(ctx, task, index, path)
            return await store_image(ctx, task, index, path)

    stored = await asyncio.gather(*(store_one(i, o) for i, o in enumerate(task.outputs)))
    return Advance("finalize", 0.0, {"videos" if video else "images": list(stored)})


async def store_image(ctx: StepContext, task: Task, index: int, path: Path) -> dict[str, Any]:
    """Check one downloaded image (at most MEDIAGATE_RESULT_MAX_BYTES) and keep it."""
    data = await asyncio.to_thread(path.read_bytes)
    try:
        info = inspect_image(data)
    except NotAnImage as exc:
        raise TaskFailed(
            "generation_failed", f"{task.provider} returned an unusable result image: {exc}"
        ) from exc
    del data
    thumb = await thumbnail_of(ctx, task, index, path)
    key = stored_file_key(ctx, task, "result", index, info.extension)
    await ctx.storage.put_file(key, path, f"image/{info.format}")
    stored: dict[str, Any] = {"key": key, "width": info.width, "height": info.height}
    if thumb is not None:
        stored["thumb"] = thumb
    return stored


async def thumbnail_of(
    ctx: StepContext, task: Task, index: int, path: Path
) -> dict[str, Any] | None:
    """Store the gallery's small copy of one result image (before the result itself
    moves away from `path`). A result Pillow cannot scale down still completes the task:
    the gallery shows the full image instead."""
    try:
        thumb = await asyncio.to_thread(make_thumbnail, path)
    except ThumbnailFailed as exc:
        log.warning("task %s: no thumbnail for result %d: %s", task.id, index, exc)
        return None
    key = stored_file_key(ctx, task, "thumb", index, "webp")
    await ctx.storage.put(key, thumb.data)
    return {"key": key, "width": thumb.width, "height": thumb.height}


async def store_video(ctx: StepContext, task: Task, index: int, path: Path) -> dict[str, Any]:
    """Probe one downloaded video, keep it and its poster (the first frame, a JPEG)."""
    try:
        info = await asyncio.to_thread(probe_video, path)
        still = await asyncio.to_thread(poster, path, info)
        poster_info = inspect_image(still, ("jpeg",))
    except (NotAVideo, NotAnImage) as exc:
        raise TaskFailed(
            "generation_failed", f"{task.provider} returned an unusable result video: {exc}"
        ) from exc
    key = stored_file_key(ctx, task, "result", index, info.extension)
    poster_key = stored_file_key(ctx, task, "poster", index, poster_info.extension)
    await ctx.storage.put_file(key, path, info.content_type)
    await ctx.storage.put(poster_key, still)
    return {
        "key": key,
        "width": info.width,
        "height": info.height,
        "duration_s": info.duration_s,
        "content_type": info.content_type,
        "poster": {"key": poster_key, "width": poster_info.width, "height": poster_info.height},
    }


async def finalize(ctx: StepContext, task: Task) -> Outcome:
    return Finish("completed")


async def cancel_upstream(ctx: StepContext, task: Task) -> None:
    """Past its deadline, ask the provider to drop the task where its API can (fal,
    Replicate); best effort, as the task fails either way and nothing is charged."""
    if task.provider is None or task.upstream_id is None:
        return
    cancel = getattr(ctx.providers.get(task.provider), "cancel", None)
    if cancel is None:
        return
    try:
        await cancel(task.upstream_id, accepted_request(ctx, task), force=True)
    except ProviderError as exc:
        log.info("task %s: could not cancel it at %s: %s", task.id, task.provider, exc.message)


def stored_file_key(ctx: StepContext, task: Task, kind: str, index: int, extension: str) -> str:
    """Unguessable yet deterministic, so a retried step overwrites instead of piling up."""
    message = f"{kind}:{task.id}:{index}".encode()
    digest = hmac.new(ctx.settings.hmac_secret, message, hashlib.sha256).hexdigest()[:40]
    return f"{digest}.{extension}"


STEPS: dict[str, Step] = {
    "prepare": prepare,
    "submit": submit,
    "submitting": submitting,
    "poll": poll,
    "store": store,
    "finalize": finalize,
}
