"""POST /v1/images/generations, POST /v1/images/edits, GET /v1/models, in OpenAI's shapes
(https://platform.openai.com/docs/api-reference/images, .../models)."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from mediagate.catalog.spec import ModelSpec
from mediagate.core.errors import InvalidRequest
from mediagate.core.http import read_json_body
from mediagate.core.state import core_state
from mediagate.keys.deps import CurrentKey
from mediagate.openai_compat import answers, edits
from mediagate.openai_compat.errors import OpenAIError, OpenAIRoute
from mediagate.openai_compat.schemas import (
    GENERATION_FIELDS,
    IMAGE_ENDPOINT,
    native_body,
    parse_request,
)
from mediagate.tasks import intake
from mediagate.tasks.content_type import require_json

SERVED = ("/v1/images/generations", "/v1/images/edits", "/v1/models")
router = APIRouter(prefix="/v1", tags=["openai"], route_class=OpenAIRoute)
OPENAI_ERROR = {
    "description": 'OpenAI\'s error shape: {"error": {"message", "type", "param", "code"}}'
}


@router.post(
    "/images/generations",
    summary="Create images (OpenAI-compatible)",
    responses={code: OPENAI_ERROR for code in (400, 401, 402, 404, 415, 429, 503, 504)},
)
async def create_images(request: Request, caller: CurrentKey) -> JSONResponse:
    core = core_state(request)
    require_json(request)
    body = await read_json_body(request, core.settings.max_body_bytes)
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object")
    fields = parse_request(core.catalog, body, GENERATION_FIELDS)
    native = native_body(fields)
    generation = answers.checked(fields, native, core.catalog)
    intake.check_routable(request, generation, caller)
    return await answers.generate(request, caller, generation, fields, native)


router.add_api_route(
    "/images/edits",
    edits.create_edit,
    methods=["POST"],
    summary="Edit images: the prompt applied to uploaded images (OpenAI-compatible)",
    responses={code: OPENAI_ERROR for code in (400, 401, 402, 404, 413, 415, 429, 503, 504)},
)


def model_object(model: ModelSpec) -> dict[str, Any]:
    # `created` is when the model was released in OpenAI's list; the catalog does not
    # record it, so 0 (the field is required by the shape).
    return {
        "id": model.id,
        "object": "model",
        "created": 0,
        "owned_by": model.vendor or "mediagate",
    }


@router.get(
    "/models", summary="List the image models (OpenAI-compatible)", responses={401: OPENAI_ERROR}
)
async def list_models(request: Request, caller: CurrentKey) -> JSONResponse:
    models = core_state(request).catalog.for_endpoint(IMAGE_ENDPOINT)
    return JSONResponse({"object": "list", "data": [model_object(m) for m in models]})


@router.get(
    "/models/{model_id}",
    summary="One image model (OpenAI-compatible)",
    responses={401: OPENAI_ERROR, 404: OPENAI_ERROR},
)
async def get_model(request: Request, model_id: str, caller: CurrentKey) -> JSONResponse:
    model = core_state(request).catalog.models.get(model_id)
    if model is None or model.endpoint != IMAGE_ENDPOINT:
        raise OpenAIError(
            404,
            f"The model {model_id!r} does not exist here",
            param="model",
            code="model_not_found",
        )
    return JSONResponse(model_object(model))


@router.api_route(
    "/{path:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
)
async def unknown_route(request: Request, path: str) -> JSONResponse:
    """Anything else under /v1 is answered in OpenAI's shape too."""
    if request.url.path in SERVED:
        raise OpenAIError(
            405,
            f"{request.method} is not allowed on {request.url.path}",
            code="method_not_allowed",
        )
    raise OpenAIError(
        404,
        f"Unknown route {request.method} {request.url.path} "
        f"(this gateway serves {', '.join(SERVED)})",
        code="unknown_url",
    )
