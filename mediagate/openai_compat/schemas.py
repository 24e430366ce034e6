"""OpenAI's Images API requests, checked, and turned into our native request body.

Fields as documented at https://platform.openai.com/docs/api-reference/images/create and
.../images/createEdit. `quality`, `style` and `user` are accepted for compatibility and
change nothing (the size decides the model's resolution); anything else OpenAI's newer
models take (background, output_format, stream, ...) is refused by name, not dropped."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mediagate.catalog.loader import Catalog
from mediagate.catalog.spec import ModelSpec
from mediagate.core.errors import InvalidRequest
from mediagate.openai_compat.errors import OpenAIError
from mediagate.openai_compat.sizes import size_params

ResponseFormat = Literal["url", "b64_json"]
QUALITIES = ("auto", "standard", "hd", "low", "medium", "high")
STYLES = ("vivid", "natural")
GENERATION_FIELDS = ("model", "prompt", "n", "size", "quality", "response_format", "user", "style")
EDIT_FIELDS = (*GENERATION_FIELDS, "image", "image[]", "mask")
IMAGE_ENDPOINT = "images/generations"
MAX_USER_LENGTH = 256


@dataclass(frozen=True)
class ImagesRequest:
    model: ModelSpec
    prompt: Any
    n: int
    size: str | None
    response_format: ResponseFormat


def parse_request(
    catalog: Catalog, body: Mapping[str, Any], allowed: tuple[str, ...]
) -> ImagesRequest:
    """Check the OpenAI fields; the model's own rules (prompt length, n) come later, from
    the native validation."""
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise InvalidRequest(
            f"Unknown parameter: {unknown[0]} (this endpoint takes {', '.join(allowed)})",
            param=unknown[0],
        )
    model = _model(catalog, body.get("model"))
    if body.get("prompt") is None:
        raise InvalidRequest("Missing required parameter: prompt", param="prompt")
    n = _integer(body.get("n", 1), "n")
    size = _choice(body.get("size"), "size", None)
    _choice(body.get("quality"), "quality", QUALITIES)
    _choice(body.get("style"), "style", STYLES)
    user = body.get("user")
    if user is not None and (not isinstance(user, str) or len(user) > MAX_USER_LENGTH):
        raise InvalidRequest(f"user must be a string of at most {MAX_USER_LENGTH}", param="user")
    response_format = _choice(body.get("response_format"), "response_format", ("url", "b64_json"))
    return ImagesRequest(model, body["prompt"], n, size, response_format or "url")  # type: ignore[arg-type]


def native_body(request: ImagesRequest, images: list[str] | None = None) -> dict[str, Any]:
    """The same request as POST /api/v1/images/generations would take it."""
    model, rules = request.model, request.model.openai
    body: dict[str, Any] = {"model": model.id, "prompt": request.prompt}
    if rules.type is not None:
        body["type"] = rules.type
    if rules.n is not None:
        body[rules.n] = request.n
    elif request.n != 1:
        raise InvalidRequest(f"Model {model.id} makes one image per request (n = 1)", param="n")
    body.update(size_params(model, request.size))
    if images is not None:
        if rules.images is None:
            raise InvalidRequest(f"Model {model.id} takes no input images", param="image")
        body[rules.images] = images
    return body


def openai_param(model: ModelSpec, param: str | None) -> str | None:
    """Our param's name as the OpenAI request spells it (in errors)."""
    rules = model.openai
    if param is not None and param == rules.n:
        return "n"
    if param is not None and param == rules.images:
        return "image"
    return param


def _model(catalog: Catalog, value: Any) -> ModelSpec:
    if value is None:
        raise InvalidRequest("Missing required parameter: model", param="model")
    if not isinstance(value, str):
        raise InvalidRequest("model must be a string", param="model")
    model = catalog.models.get(value)
    if model is None or model.endpoint != IMAGE_ENDPOINT:
        known = ", ".join(m.id for m in catalog.for_endpoint(IMAGE_ENDPOINT))
        raise OpenAIError(
            404,
            f"The model {value!r} does not exist here (image models: {known}; GET /v1/models)",
            param="model",
            code="model_not_found",
        )
    return model


def _integer(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidRequest(f"{name} must be an integer", param=name)
    return value


def _choice(value: Any, name: str, choices: tuple[str, ...] | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or (choices is not None and value not in choices):
        allowed = f" one of: {', '.join(choices)}" if choices else " a string"
        raise InvalidRequest(f"{name} must be{allowed}", param=name)
    return value
