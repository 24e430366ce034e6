"""The catalog as data: JSON for /api/v1/models and JSON Schema for OpenAPI."""

from typing import Any, Literal

from pydantic import Field

from mediagate.catalog.spec import ModelSpec, ParamSpec
from mediagate.core.schemas import Strict

JSON_TYPES = {
    "string": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "array": "array",
    "url": "string",
}


def param_schema(spec: ParamSpec) -> dict[str, Any]:
    """JSON Schema of one parameter."""
    schema: dict[str, Any] = {"type": JSON_TYPES[spec.type]}
    if spec.description:
        schema["description"] = spec.description
    if spec.default is not None:
        schema["default"] = spec.default
    if spec.enum is not None:
        schema["enum"] = list(spec.enum)
    if spec.type == "url":
        schema["format"] = "uri"
    for key, attr in (
        ("minLength", spec.min_length),
        ("maxLength", spec.max_length),
        ("minimum", spec.minimum),
        ("maximum", spec.maximum),
        ("minItems", spec.min_items),
        ("maxItems", spec.max_items),
    ):
        if attr is not None:
            schema[key] = attr
    if spec.type == "array":
        item: dict[str, Any] = {"type": JSON_TYPES[spec.items or "string"]}
        if spec.items == "url":
            item["format"] = "uri"
        if spec.item_max_length is not None:
            item["maxLength"] = spec.item_max_length
        schema["items"] = item
    if spec.example is not None:
        schema["examples"] = [spec.example]
    return schema


def request_schema(model: ModelSpec) -> dict[str, Any]:
    """JSON Schema of a generation request for `model`, per-type rules as if/then."""
    properties: dict[str, Any] = {
        "model": {"type": "string", "const": model.id},
        "type": {"type": "string", "enum": list(model.types), "default": model.default_type},
    }
    properties.update({name: param_schema(p) for name, p in model.params.items()})
    required = ["model", *[n for n, p in model.params.items() if p.required]]
    conditions = []
    for task_type in model.types.values():
        changed = {
            name: param_schema(p) for name, p in task_type.params.items() if p != model.params[name]
        }
        if changed:
            conditions.append(
                {
                    "if": {"properties": {"type": {"const": task_type.name}}, "required": ["type"]},
                    "then": {"properties": changed},
                }
            )
    schema: dict[str, Any] = {
        "title": f"{model.name} request",
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    if conditions:
        schema["allOf"] = conditions
    return schema


class PricingData(Strict):
    unit: Literal["request", "image", "second"]
    per: str | None = Field(description="The param the credits are multiplied by")
    by: list[str] = Field(description="The params the table is keyed by")
    credits: float | None = Field(description="Credits per unit (no table)")
    table: dict[str, float] | None = Field(
        description='Credits per unit by the values of `by`, joined with "/"'
    )
    text: str


class TypeData(Strict):
    type: str
    price: int = Field(
        description="Credits for a task that leaves the priced params at their defaults"
    )
    pricing: PricingData = Field(description="The rule the price of any task is computed by")
    description: str
    default: bool


class InputsData(Strict):
    formats: list[str]
    min_side: int
    max_aspect: float
    max_bytes: int
    max_pixels: int


class FaqEntry(Strict):
    q: str
    a: str


class ModelData(Strict):
    """The OpenAPI model of `model_as_data`'s answer."""

    id: str
    object: Literal["model"]
    name: str
    vendor: str
    endpoint: str
    summary: str
    description: str
    capabilities: list[str]
    types: list[TypeData]
    params: dict[str, Any] = Field(description="JSON Schema of a request body for this model")
    inputs: InputsData = Field(description="What reference images must satisfy")
    deadline_s: int
    faq: list[FaqEntry]


def model_as_data(model: ModelSpec) -> dict[str, Any]:
    """Everything a client or a docs page needs to know about a model."""
    return {
        "id": model.id,
        "object": "model",
        "name": model.name,
        "vendor": model.vendor,
        "endpoint": f"/api/v1/{model.endpoint}",
        "summary": model.summary,
        "description": model.description,
        "capabilities": list(model.capabilities),
        "types": [
            {
                "type": t.name,
                "price": t.price.quote_defaults(t.params),
                "pricing": t.price.as_data(),
                "description": t.description,
                "default": t.name == model.default_type,
            }
            for t in model.types.values()
        ],
        "params": request_schema(model),
        "inputs": {
            "formats": list(model.inputs.formats),
            "min_side": model.inputs.min_side,
            "max_aspect": model.inputs.max_aspect,
            "max_bytes": model.inputs.max_bytes,
            "max_pixels": model.inputs.max_pixels,
        },
        "deadline_s": model.deadline_s,
        "faq": [{"q": q, "a": a} for q, a in model.faq],
    }


def example_request(model: ModelSpec) -> dict[str, Any]:
    """A request body built from the declaration's examples (the docs' curl)."""
    body: dict[str, Any] = {"model": model.id}
    for spec in model.params.values():
        if spec.example is not None:
            body[spec.name] = spec.example
    return body


def limits_text(spec: ParamSpec) -> str:
    """A parameter's limits in words, for the docs page."""
    parts = []
    if spec.min_length is not None or spec.max_length is not None:
        parts.append(f"{spec.min_length or 0}–{spec.max_length} characters")
    if spec.minimum is not None or spec.maximum is not None:
        parts.append(f"{spec.minimum} to {spec.maximum}")
    if spec.min_items is not None or spec.max_items is not None:
        parts.append(f"{spec.min_items or 0}–{spec.max_items} items")
    if spec.item_max_length is not None:
        parts.append(f"each at most {spec.item_max_length} characters")
    if spec.enum:
        parts.append("one of " + ", ".join(map(str, spec.enum)))
    return "; ".join(parts)
