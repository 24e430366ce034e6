"""POST /api/v1/images/generations, GET /api/v1/tasks and GET /api/v1/tasks/{task_id}."""

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse

from mediagate.catalog.loader import Catalog
from mediagate.catalog.schemas import request_schema
from mediagate.catalog.validation import validate_request
from mediagate.core.http import public_base, read_json_body, success
from mediagate.core.state import core_state
from mediagate.keys.deps import CurrentKey
from mediagate.tasks import intake, listing, prefer, service
from mediagate.tasks.content_type import require_json
from mediagate.tasks.idempotency import check_key
from mediagate.tasks.waiters import TaskWaiters

ERRORS = {
    400: {"description": "invalid_request_error: a parameter is missing, wrong or unknown"},
    401: {"description": "authentication_error"},
    402: {"description": "insufficient_credits"},
    404: {"description": "not_found: unknown model"},
    409: {"description": "idempotency_error: the same key is still being processed"},
    413: {"description": "invalid_request_error: body too large"},
    422: {"description": "idempotency_error: the key was used with a different body"},
    429: {"description": "rate_limit_error"},
    503: {"description": "provider_unavailable"},
}


def build_router(catalog: Catalog, endpoint: str = "images/generations") -> APIRouter:
    """The generation route documents exactly the models the catalog declares."""
    router = APIRouter(prefix="/api/v1", tags=["tasks"])
    schemas = [request_schema(m) for m in catalog.for_endpoint(endpoint)]
    body_schema: dict[str, Any] = {"oneOf": schemas} if len(schemas) != 1 else schemas[0]

    @router.post(
        f"/{endpoint}",
        summary="Create a generation task",
        responses=ERRORS,  # type: ignore[arg-type]
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": body_schema}},
            }
        },
    )
    async def create_generation(
        request: Request,
        caller: CurrentKey,
        idempotency_key: Annotated[str | None, Header()] = None,
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
        return _with_headers(success(service.task_as_data(task, public_base(request))), wait_s)

    @router.get(
        "/tasks",
        summary="List the account's tasks, newest first",
        responses={400: ERRORS[400], 401: ERRORS[401]},
    )
    async def list_tasks(request: Request, caller: CurrentKey) -> JSONResponse:
        query = request.query_params
        repeated = {name for name in query if len(query.getlist(name)) > 1}
        rules = listing.parse_filter(query, repeated)
        tasks, next_cursor = await listing.list_tasks(
            core_state(request).db, caller.account_id, rules
        )
        base = public_base(request)
        return success(
            {
                "tasks": [service.task_as_data(t, base) for t in tasks],
                "next_cursor": next_cursor.encode() if next_cursor else None,
            }
        )

    @router.get(
        "/tasks/{task_id}",
        summary="Get a task",
        responses={401: ERRORS[401], 404: {"description": "not_found"}},
    )
    async def get_task(request: Request, task_id: str, caller: CurrentKey) -> JSONResponse:
        wait_s = prefer.wait_preference(request.headers.get("prefer"))
        db = core_state(request).db
        if wait_s:
            waiters: TaskWaiters = request.app.state.waiters
            task = await prefer.until_finished(waiters, db, caller.account_id, task_id, wait_s)
        else:
            task = await service.get_task(db, caller.account_id, task_id)
        return _with_headers(success(service.task_as_data(task, public_base(request))), wait_s)

    return router


def _with_headers(response: JSONResponse, wait_s: int | None) -> JSONResponse:
    response.headers.update(prefer.applied(wait_s))
    return response
