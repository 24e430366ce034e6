"""The steps of a task. Each is short, reads the task row it was handed, and returns what
to write next; the runner does the (fenced) writing.

prepare → submit → [submitting] → poll → store → finalize
"""

import asyncio
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from mediagate.catalog.loader import Catalog
from mediagate.core.settings import Settings
from mediagate.media.images import NotAnImage, inspect_image
from mediagate.media.storage import Storage
from mediagate.providers.base import ProviderRequest
from mediagate.providers.registry import ProviderRegistry
from mediagate.tasks.models import Task


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
    checkpoint: Checkpoint


Step = Callable[[StepContext, Task], Awaitable[Outcome]]


def provider_request(task: Task) -> ProviderRequest:
    return ProviderRequest(reference=task.id, model=task.model, type=task.type, params=task.params)


def poll_delay(polls: int) -> float:
    """Poll soon at first, then back off to every 10 s."""
    return min(0.5 * (polls + 1), 10.0)


async def prepare(ctx: StepContext, task: Task) -> Outcome:
    # Reference images are fetched and checked here once the fetcher lands (issue 3).
    return Advance("submit")


async def submit(ctx: StepContext, task: Task) -> Outcome:
    model = ctx.catalog.get(task.model)
    name = ctx.providers.routes(model, task.type, task.mode)[0]
    provider = ctx.providers.get(name)
    # Persist the intent first: if we die after the provider accepts, the replay sees
    # `submitting` and looks the task up instead of paying for it twice.
    await ctx.checkpoint(task, {"step": "submitting", "provider": name})
    upstream_id = await provider.submit(provider_request(task))
    return Advance("poll", poll_delay(0), {"upstream_id": upstream_id, "polls": 0})


async def submitting(ctx: StepContext, task: Task) -> Outcome:
    """A replay of an interrupted submit: find out whether the provider took the task."""
    assert task.provider is not None
    provider = ctx.providers.get(task.provider)
    if not provider.supports_lookup:
        raise TaskFailed(
            "needs_reconciliation",
            f"Submitting to {task.provider} was interrupted and it cannot be looked up safely; "
            "the task was not resubmitted and nothing was charged",
        )
    upstream_id = await provider.lookup(task.id)
    if upstream_id is None:
        return Advance("submit")  # the provider never saw it: submitting again is safe
    return Advance("poll", 0.0, {"upstream_id": upstream_id, "polls": 0})


async def poll(ctx: StepContext, task: Task) -> Outcome:
    assert task.provider is not None and task.upstream_id is not None
    provider = ctx.providers.get(task.provider)
    result = await provider.poll(task.upstream_id, provider_request(task))
    if result.state == "pending":
        return Advance("poll", poll_delay(task.polls + 1), {"polls": task.polls + 1})
    if result.state == "failed":
        raise TaskFailed(
            result.error_type or "generation_failed",
            result.error_message or f"{task.provider} could not generate this task",
        )
    if not result.outputs:
        raise TaskFailed("generation_failed", f"{task.provider} returned no images")
    return Advance("store", 0.0, {"outputs": result.outputs})


async def store(ctx: StepContext, task: Task) -> Outcome:
    """Copy every result into our storage, concurrently; the task completes only once all
    are stored (a retry rewrites the same files)."""
    assert task.provider is not None and task.outputs
    provider = ctx.providers.get(task.provider)
    request = provider_request(task)

    async def store_one(index: int, output: str) -> dict[str, Any]:
        data = await provider.fetch_result(output, request)
        try:
            info = inspect_image(data)
        except NotAnImage as exc:
            raise TaskFailed(
                "generation_failed", f"{task.provider} returned an unusable result image: {exc}"
            ) from exc
        key = f"{result_file_name(ctx.settings.hmac_secret, task.id, index)}.{info.extension}"
        await ctx.storage.put(key, data)
        return {"key": key, "width": info.width, "height": info.height}

    images = await asyncio.gather(*(store_one(i, o) for i, o in enumerate(task.outputs)))
    return Advance("finalize", 0.0, {"images": list(images)})


async def finalize(ctx: StepContext, task: Task) -> Outcome:
    return Finish("completed")


def result_file_name(secret: bytes, task_id: str, index: int) -> str:
    """Unguessable yet deterministic, so a retried store overwrites instead of piling up."""
    digest = hmac.new(secret, f"result:{task_id}:{index}".encode(), hashlib.sha256)
    return digest.hexdigest()[:40]


STEPS: dict[str, Step] = {
    "prepare": prepare,
    "submit": submit,
    "submitting": submitting,
    "poll": poll,
    "store": store,
    "finalize": finalize,
}
