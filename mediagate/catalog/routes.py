"""The catalog as data: GET /api/v1/models and /api/v1/models/{id} (no key needed)."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from mediagate.catalog.schemas import ModelData, model_as_data
from mediagate.core.http import success
from mediagate.core.schemas import answers
from mediagate.core.state import core_state

router = APIRouter(prefix="/api/v1", tags=["models"])


@router.get("/models", summary="List models", responses=answers(list[ModelData]))
async def list_models(request: Request) -> JSONResponse:
    catalog = core_state(request).catalog
    return success([model_as_data(m) for m in catalog.models.values()])


@router.get(
    "/models/{model_id}",
    summary="Get a model",
    responses=answers(ModelData, 404, e404="not_found: unknown model"),
)
async def get_model(request: Request, model_id: str) -> JSONResponse:
    return success(model_as_data(core_state(request).catalog.get(model_id)))
