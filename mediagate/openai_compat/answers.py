"""Running a door request through the normal pipeline and answering in OpenAI's shape."""

import base64
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from mediagate.catalog.validation import GenerationRequest, validate_request
from mediagate.core.errors import InvalidRequest
from mediagate.core.http import files_base
from mediagate.core.state import core_state
from mediagate.keys.service import AuthedKey
from mediagate.media.storage import Storage
from mediagate.openai_compat.errors import OpenAIError
from mediagate.openai_compat.schemas import IMAGE_ENDPOINT, ImagesRequest, openai_param
from mediagate.tasks import intake, prefer, service
from mediagate.tasks.idempotency import check_key

FAILED_STATUS = {
    "invalid_image": (400, "invalid_request_error", "image"),
    "content_policy": (400, "invalid_request_error", "prompt"),
    "provider_unavailable": (503, "server_error", None),
    "timeout": (504, "server_error", None),
}
"""A failed task's error as an OpenAI answer (status, type, param); others are 500."""


def checked(request: ImagesRequest, native: dict[str, Any], catalog: Any) -> GenerationRequest:
    """The native validation, its errors naming the OpenAI fields."""
    try:
        return validate_request(catalog, native, IMAGE_ENDPOINT)
    except InvalidRequest as exc:
        name = openai_param(request.model, exc.param)
        if name == exc.param:
            raise
        raise InvalidRequest(f"{exc.message} (OpenAI's {name})", param=name) from None


async def generate(
    http: Request,
    caller: AuthedKey,
    generation: GenerationRequest,
    fields: ImagesRequest,
    fingerprint: dict[str, Any],
) -> JSONResponse:
    """Accept the task as POST /api/v1/images/generations would, wait for its end within
    the deadline, answer with its images."""
    core = core_state(http)
    key = check_key(http.headers.get("idempotency-key"))
    submission = await intake.accept(
        http,
        caller,
        generation,
        idempotency_key=key,
        fingerprint=service.request_fingerprint({"door": "openai", **fingerprint}) if key else None,
    )
    task = await prefer.until_finished(
        http.app.state.waiters,
        core.db,
        caller.account_id,
        submission.task_id,
        core.settings.openai_deadline_s,
    )
    if task.status == "in_progress":
        deadline = f"{core.settings.openai_deadline_s:g}"
        raise OpenAIError(
            504,
            f"The images are not ready within {deadline} s; task {task.id} goes on: "
            f"GET /api/v1/tasks/{task.id} for its result",
            type_="server_error",
            code="task_in_progress",
            extra={"task_id": task.id},
            # A retry would start (and pay for) a second task; this one is still running.
            headers={"x-should-retry": "false"},
        )
    if task.status != "completed":
        status, type_, param = FAILED_STATUS.get(task.error_type or "", (500, "server_error", None))
        raise OpenAIError(
            status,
            f"{task.error_message or 'The generation failed'} (task {task.id})",
            type_=type_,
            param=param,
            code=task.error_type,
            extra={"task_id": task.id},
        )
    return JSONResponse(
        {
            "created": int(task.created_at.timestamp()),
            "data": await _images(http, task, fields.response_format),
        }
    )


async def _images(http: Request, task: service.TaskView, response_format: str) -> list[Any]:
    images = task.images or []
    if response_format == "url":
        base = files_base(http)
        return [{"url": f"{base}/files/{image['key']}"} for image in images]
    storage: Storage = http.app.state.storage
    encoded = []
    for image in images:
        data = await storage.get(image["key"])
        if data is None:
            raise OpenAIError(
                500, f"A result of task {task.id} is missing from storage", type_="server_error"
            )
        encoded.append({"b64_json": base64.b64encode(data).decode()})
    return encoded
