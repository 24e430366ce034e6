"""POST /api/v1/images/generations, POST /api/v1/videos/generations, GET /api/v1/tasks and
GET /api/v1/tasks/{task_id}, POST /api/v1/tasks/{task_id}/cancel."""

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse

from mediagate.catalog.loader import Catalog
from mediagate.catalog.schemas import request_schema
from mediagate.catalog.validation import validate_request
from mediagate.core.http import files_base, read_json_body, success
from mediagate.core.schemas import BEARER, answers
from mediagate.core.state import core_state
from mediagate.keys.deps import CurrentKey
from mediagate.media.expiry import Retention
from mediagate.tasks import intake, listing, prefer, service
from mediagate.tasks.cancelling import canceller
from mediagate.tasks.content_type import require_json
from mediagate.tasks.idempotency import MAX_KEY_LENGTH, check_key
from mediagate.tasks.schemas import Submission, TaskData, TaskList
from mediagate.tasks.waiters import TaskWaiters

ID_KEY = Header(
    description="Makes a retried submit safe: the same key with the same body within 24 h "
    "returns the same task and takes no second hold; with a different body, 422; while the "
    "first is still being processed, 409. 1-255 printable characters.",
    json_schema_extra={"minLength": 1, "maxLength": MAX_KEY_LENGTH},
)


GENERATION_ENDPOINTS = {
    "images/generations": "Create an image generation task",
    "videos/generations": "Create a video generation task",
}
"""Every generation route (a model's `endpoint`); each takes the same envelope."""


def build_router(catalog: Catalog) -> APIRouter:
    """The generation routes and the task routes."""
    router = APIRouter(prefix="/api/v1", tags=["tasks"])
    for endpoint, summary in GENERATION_ENDPOINTS.items():
        _add_generation_route(router, catalog, endpoint, summary)
    _add_task_routes(router)
    return router


def _body_schema(catalog: Catalog, endpoint: str) -> dict[str, Any]:
    """Exactly the models the catalog declares for `endpoint`."""
    schemas = [request_schema(m) for m in catalog.for_endpoint(endpoint)]
    if len(schemas) == 1:
        return schemas[0]
    if not schemas:
        return {"type": "object", "description": "No model of the catalog serves this route"}
    return {"oneOf": schemas}


def _add_generation_route(router: APIRouter, catalog: Catalog, endpoint: str, summary: str) -> None:
    body_schema = _body_schema(catalog, endpoint)

    @router.post(
        f"/{endpoint}",
        summary=summary,
        responses=answers(
            Submission,
            *(400, 401, 402, 404, 409, 413, 422, 429, 503),
            e404="not_found: unknown model",
        ),
        openapi_extra={
            **BEARER,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": body_schema}},
            },
        },
    )
    async def create_generation(
        request: Request,
        caller: CurrentKey,
        idempotency_key: Annotated[str | None, ID_KEY] = None,
    ) -> JSONResponse:
        core = core_state(request)
        wait_s = prefer.wait_preference(request.headers.get("prefer"))
        require_json(request)
        body = await read_json_body(request, core.settings.max_body_bytes)
        generation = validate_request(core.catalog, body, endpoint)
        intake.check_routable(request, generation, caller)
        key = check_key(idempotency_key)
        submission = await intake.accept(
            request,
            caller,
            generation,
            idempotency_key=key,
            fingerprint=service.request_fingerprint(body) if key else None,
        )
        if not wait_s:
            return success(
                {"task_id": submission.task_id, "status": service.API_STATUS[submission.status]}
            )
        # With a wait, the whole task object: the same answer as GET /tasks/{id}.
        task = await prefer.until_finished(
            request.app.state.waiters, core.db, caller.account_id, submission.task_id, wait_s
        )
        return _with_headers(
            success(service.task_as_data(task, files_base(request), _retention(request))), wait_s
        )


def _add_task_routes(router: APIRouter) -> None:
    @router.get(
        "/tasks",
        summary="List the account's tasks, newest first",
        responses=answers(TaskList, 400, 401, 429),
        openapi_extra=BEARER,
    )
    async def list_tasks(request: Request, caller: CurrentKey) -> JSONResponse:
        query = request.query_params
        repeated = {name for name in query if len(query.getlist(name)) > 1}
        rules = listing.parse_filter(query, repeated)
        tasks, next_cursor = await listing.list_tasks(
            core_state(request).db, caller.account_id, rules
        )
        base, retention = files_base(request), _retention(request)
        return success(
            {
                "tasks": [service.task_as_data(t, base, retention) for t in tasks],
                "next_cursor": next_cursor.encode() if next_cursor else None,
            }
        )

    @router.get(
        "/tasks/{task_id}",
        summary="Get a task",
        responses=answers(
            TaskData, 401, 404, 429, e404="not_found: no such task for this key's account"
        ),
        openapi_extra=BEARER,
    )
    async def get_task(request: Request, task_id: str, caller: CurrentKey) -> JSONResponse:
        wait_s = prefer.wait_preference(request.headers.get("prefer"))
        db = core_state(request).db
        if wait_s:
            waiters: TaskWaiters = request.app.state.waiters
            task = await prefer.until_finished(waiters, db, caller.account_id, task_id, wait_s)
        else:
            task = await service.get_task(db, caller.account_id, task_id)
        return _with_headers(
            success(service.task_as_data(task, files_base(request), _retention(request))), wait_s
        )

    @router.post(
        "/tasks/{task_id}/cancel",
        summary="Cancel a task",
        description=(
            "Ends the task `cancelled`, with nothing charged, while that can still be done: "
            "at once before a provider has it; after, only if the provider's API can stop "
            "it and confirms it did. Otherwise 409 `conflict` saying why, and the task runs "
            "on (charged only if it succeeds). Cancelling a cancelled task answers the same."
        ),
        responses=answers(
            TaskData,
            401,
            404,
            409,
            429,
            503,
            e404="not_found: no such task for this key's account",
            e409="conflict: the task can no longer be cancelled (the message says why)",
            e503="provider_unavailable: the provider could not be asked to cancel it",
        ),
        openapi_extra=BEARER,
    )
    async def cancel_task(request: Request, task_id: str, caller: CurrentKey) -> JSONResponse:
        task = await canceller(request).cancel(caller.account_id, task_id)
        return success(service.task_as_data(task, files_base(request), _retention(request)))


def _with_headers(response: JSONResponse, wait_s: int | None) -> JSONResponse:
    response.headers.update(prefer.applied(wait_s))
    return response


def _retention(request: Request) -> Retention:
    return Retention.from_settings(core_state(request).settings)
