"""POST /api/v1/images/generations, GET /api/v1/tasks and GET /api/v1/tasks/{task_id}."""

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError

from mediagate.catalog.loader import Catalog
from mediagate.catalog.schemas import request_schema
from mediagate.catalog.validation import validate_request
from mediagate.core.http import public_base, read_json_body, success
from mediagate.core.state import core_state
from mediagate.keys.cache import KeyCache
from mediagate.keys.deps import CurrentKey
from mediagate.keys.service import touch
from mediagate.providers.registry import ProviderRegistry
from mediagate.runner.wakeups import Wakeups
from mediagate.tasks import listing, service
from mediagate.tasks.idempotency import InFlightKeys, check_key

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
        body = await read_json_body(request, core.settings.max_body_bytes)
        generation = validate_request(core.catalog, body, endpoint)
        registry: ProviderRegistry = request.app.state.providers
        registry.routes(generation.model, generation.type, caller.mode)  # 503 before any hold
        key = check_key(idempotency_key)
        in_flight: InFlightKeys = request.app.state.idempotency
        key_cache: KeyCache = request.app.state.key_cache
        fingerprint = service.request_fingerprint(body) if key else None

        async def submit() -> service.Submission:
            async with core.db.write() as session:
                submission = await service.submit_generation(
                    session,
                    caller=caller,
                    request=generation,
                    max_in_flight=core.settings.max_in_flight_per_account,
                    idempotency_key=key,
                    fingerprint=fingerprint,
                )
                if key_cache.due_for_touch(caller.id):
                    await touch(session, caller.id)
                if not submission.replayed:
                    await service.announce_new_task(session)
            return submission

        with in_flight.claim(caller.account_id, key):
            try:
                submission = await submit()
            except IntegrityError:
                if key is None:
                    raise
                # Another replica committed the same Idempotency-Key first: our unit rolled
                # back (no task, no hold); answer as a replay of theirs.
                submission = await submit()
        if not submission.replayed:
            wakeups: Wakeups = request.app.state.wakeups
            await wakeups.announce()
        return success(
            {"task_id": submission.task_id, "status": service.API_STATUS[submission.status]}
        )

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
        task = await service.get_task(core_state(request).db, caller.account_id, task_id)
        return success(service.task_as_data(task, public_base(request)))

    return router
