"""One task of the signed-in user's account, as a page: what was asked (prompt, params),
what happened (status, cost, results, error) and the curl that asks the same again."""

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mediagate.catalog.spec import ModelSpec
from mediagate.core.errors import NotFound, ProviderUnavailable
from mediagate.core.http import files_base, public_base
from mediagate.core.state import core_state
from mediagate.media.expiry import Retention
from mediagate.tasks.cancelling import CannotCancel, canceller
from mediagate.tasks.models import Task
from mediagate.tasks.service import task_as_data
from mediagate.web.render import page, redirect
from mediagate.web.security import SignedIn, check_csrf, form

router = APIRouter(include_in_schema=False)


def request_body(task: Task, spec: ModelSpec | None) -> dict[str, Any]:
    """The body that asks for this task again (`type` only when it is not the default)."""
    body: dict[str, Any] = {"model": task.model}
    if spec is None or task.type != spec.default_type:
        body["type"] = task.type
    return {**body, **task.params}


def shell_quoted(text: str) -> str:
    """`text` inside single quotes for a POSIX shell."""
    return "'" + text.replace("'", "'\\''") + "'"


@router.get("/tasks/{task_id}")
async def task_page(request: Request, task_id: str, who: SignedIn) -> Response:
    return await _task_page(request, task_id, who)


@router.post("/tasks/{task_id}/cancel")
async def cancel_task(request: Request, task_id: str, who: SignedIn) -> Response:
    """The page's Cancel button: the API's cancel, for the signed-in user's account."""
    check_csrf(request, who.csrf_token, await form(request))
    try:
        await canceller(request).cancel(who.user.account_id, task_id)
    except (CannotCancel, ProviderUnavailable) as refused:
        return await _task_page(request, task_id, who, error=refused.message)
    return redirect(f"/tasks/{task_id}")


async def _task_page(
    request: Request, task_id: str, who: SignedIn, *, error: str | None = None
) -> Response:
    async with core_state(request).db.read() as session:
        task = await session.get(Task, task_id)
    if task is None or task.account_id != who.user.account_id:  # another's is as unknown
        raise NotFound(f"No task {task_id!r}")
    spec = core_state(request).catalog.models.get(task.model)
    endpoint = f"/api/v1/{spec.endpoint}" if spec else None
    return page(
        request,
        "task.html",
        who,
        t=task_as_data(
            task, files_base(request), Retention.from_settings(core_state(request).settings)
        ),
        mode=task.mode,
        prompt=task.params.get("prompt"),
        params={k: v for k, v in task.params.items() if k != "prompt"},
        base=public_base(request),
        endpoint=endpoint,
        body=shell_quoted(json.dumps(request_body(task, spec))),
        as_json=json.dumps,
        cancel_error=error,
    )
