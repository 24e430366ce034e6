"""POST /api/v1/images/generations and GET /api/v1/tasks/{task_id}."""

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError

from mediagate.catalog.loader import Catalog
from mediagate.catalog.schemas import request_schema
from mediagate.catalog.validation import validate_request
from mediagate.core.http import files_base, read_json_body, success
from mediagate.core.schemas import BEARER, answers
from mediagate.core.state import core_state
from mediagate.keys.cache import KeyCache
from mediagate.keys.deps import CurrentKey
from mediagate.keys.service import touch
from mediagate.providers.registry import ProviderRegistry
from mediagate.runner.wakeups import Wakeups
from mediagate.tasks import service
from mediagate.tasks.idempotency import MAX_KEY_LENGTH, InFlightKeys, check_key
from mediagate.tasks.schemas import Submission, TaskData

ID_KEY = Header(
    description="Makes a retried submit safe: the same key with the same body within 24 h "
    "returns the same task and takes no second hold; with a different body, 422; while the "
    "first is still being processed, 409. 1-255 printable characters.",
    json_schema_extra={"minLength": 1, "maxLength": MAX_KEY_LENGTH},
)


def build_router(catalog: Catalog, endpoint: str = "images/generations") -> APIRouter:
    """The generation route documents exactly the models the catalog declares."""
    router = APIRouter(prefix="/api/v1", tags=["tasks"])
    schemas = [request_schema(m) for m in catalog.for_endpoint(endpoint)]
    body_schema: dict[str, Any] = {"oneOf": schemas} if len(schemas) != 1 else schemas[0]

    @router.post(
        f"/{endpoint}",
        summary="Create a generation task",
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
        body = await read_json_body(request, core.settings.max_body_bytes)
        generation = validate_request(core.catalog, body, endpoint)
        registry: ProviderRegistry = request.app.state.providers
        # 503 (no provider) or 400 (none can honour these params) before any hold
        registry.routes(generation.model, generation.type, caller.mode, generation.params)
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
        "/tasks/{task_id}",
        summary="Get a task",
        responses=answers(
            TaskData, 401, 404, 429, e404="not_found: no such task for this key's account"
        ),
        openapi_extra=BEARER,
    )
    async def get_task(request: Request, task_id: str, caller: CurrentKey) -> JSONResponse:
        task = await service.get_task(core_state(request).db, caller.account_id, task_id)
        return success(service.task_as_data(task, files_base(request)))

    return router
