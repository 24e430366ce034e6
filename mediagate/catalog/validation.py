"""Check a request body against a model's declaration and fill in defaults."""

import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mediagate.catalog.loader import Catalog
from mediagate.catalog.spec import ModelSpec, ParamSpec
from mediagate.core.errors import InvalidRequest

RESERVED = ("model", "type")


@dataclass(frozen=True)
class GenerationRequest:
    model: ModelSpec
    type: str
    price: int
    params: dict[str, Any]
    """Every declared param, normalised, defaults filled in (absent optional ones omitted)."""


def validate_request(catalog: Catalog, body: Any, endpoint: str) -> GenerationRequest:
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object")
    model_id = body.get("model")
    if model_id is None:
        raise InvalidRequest("Missing required parameter: model", param="model")
    if not isinstance(model_id, str):
        raise InvalidRequest("model must be a string", param="model")
    model = catalog.get(model_id)
    if model.endpoint != endpoint:
        raise InvalidRequest(
            f"Model {model_id!r} is not served by this endpoint (use /api/v1/{model.endpoint})",
            param="model",
        )
    unknown = sorted(set(body) - set(model.params) - set(RESERVED))
    if unknown:
        raise InvalidRequest(
            f"Unknown parameter: {unknown[0]} (model {model.id} takes "
            f"{', '.join([*RESERVED, *model.params])})",
            param=unknown[0],
        )
    type_name = _check_type(model, body.get("type"))
    task_type = model.task_type(type_name)
    params: dict[str, Any] = {}
    for name, spec in task_type.params.items():
        value = body.get(name)
        if value is None:
            if spec.required or (spec.min_items or 0) > 0:
                raise InvalidRequest(_missing(spec, type_name, model), param=name)
            if spec.default is not None:
                params[name] = spec.default
            continue
        params[name] = check_value(spec, value, type_name)
    return GenerationRequest(
        model=model, type=type_name, price=task_type.price.quote(params), params=params
    )


def _check_type(model: ModelSpec, value: Any) -> str:
    if value is None:
        return model.default_type
    if not isinstance(value, str) or value not in model.types:
        raise InvalidRequest(f"type must be one of: {', '.join(model.types)}", param="type")
    return value


def _missing(spec: ParamSpec, type_name: str, model: ModelSpec) -> str:
    if spec.type == "array" and spec.min_items:
        return f"{spec.name} requires at least {spec.min_items} item(s) for type {type_name}"
    return f"Missing required parameter: {spec.name}"


def check_value(spec: ParamSpec, value: Any, type_name: str) -> Any:
    """The normalised value, or InvalidRequest naming the param and the rule broken."""
    match spec.type:
        case "string":
            return _check_string(spec, value)
        case "integer":
            return _check_integer(spec, value, type_name)
        case "number":
            return _check_number(spec, value)
        case "boolean":
            if not isinstance(value, bool):
                raise InvalidRequest(f"{spec.name} must be true or false", param=spec.name)
            return value
        case "url":
            return _check_url(spec, spec.name, value)
        case "array":
            return _check_array(spec, value, type_name)
    raise AssertionError(f"unhandled param type {spec.type}")


def _check_string(spec: ParamSpec, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"{spec.name} must be a string", param=spec.name)
    _check_unicode(spec, spec.name, value)
    if spec.trim:
        value = value.strip()
    if spec.enum is not None:
        candidate = value.lower() if spec.case_insensitive else value
        if candidate not in spec.enum:
            raise InvalidRequest(
                f"{spec.name} must be one of: {', '.join(map(str, spec.enum))}", param=spec.name
            )
        return candidate
    _check_length(spec, spec.name, value)
    return value


def _check_unicode(spec: ParamSpec, label: str, value: str) -> None:
    """A lone surrogate parses from JSON but can be neither stored nor sent upstream."""
    if value.isascii():
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(
            f"{label} is not valid Unicode text (it holds a lone surrogate)", param=spec.name
        ) from None


def _check_length(spec: ParamSpec, label: str, value: str) -> None:
    if spec.min_length is not None and len(value) < spec.min_length:
        raise InvalidRequest(
            f"{label} must be at least {spec.min_length} character(s)"
            + (" after trimming" if spec.trim else ""),
            param=spec.name,
        )
    if spec.max_length is not None and len(value) > spec.max_length:
        raise InvalidRequest(
            f"{label} must be at most {spec.max_length} characters", param=spec.name
        )


def _check_integer(spec: ParamSpec, value: Any, type_name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{spec.name} must be an integer", param=spec.name)
    if spec.enum is not None:
        if value not in spec.enum:
            allowed = ", ".join(str(v) for v in spec.enum)
            raise InvalidRequest(f"{spec.name} must be one of: {allowed}", param=spec.name)
        return value
    _check_range(spec, value, type_name)
    return value


def _check_number(spec: ParamSpec, value: Any) -> float:
    # JSON has one number type: 5 and 5.0 are the same number.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequest(f"{spec.name} must be a number", param=spec.name)
    _check_range(spec, value, "")
    return float(value)


def _check_range(spec: ParamSpec, value: float, type_name: str) -> None:
    if spec.minimum is not None and value < spec.minimum:
        raise InvalidRequest(f"{spec.name} must be at least {spec.minimum}", param=spec.name)
    if spec.maximum is not None and value > spec.maximum:
        suffix = f" for type {type_name}" if spec.maximum == spec.minimum else ""
        raise InvalidRequest(f"{spec.name} must be at most {spec.maximum}{suffix}", param=spec.name)


def _check_url(spec: ParamSpec, label: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"{label} must be a URL string", param=spec.name)
    _check_unicode(spec, label, value)
    limit = spec.item_max_length if spec.type == "array" else spec.max_length
    if limit is not None and len(value) > limit:
        raise InvalidRequest(f"{label} must be at most {limit} characters", param=spec.name)
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError for a malformed port
    except ValueError:
        valid = False
    else:
        valid = bool(parts.hostname) and not any(c.isspace() for c in value)
    if not valid:
        raise InvalidRequest(f"{label} is not a valid URL", param=spec.name)
    if parts.scheme.lower() not in spec.schemes:
        raise InvalidRequest(f"{label} must use {' or '.join(spec.schemes)}", param=spec.name)
    return value


def _check_array(spec: ParamSpec, value: Any, type_name: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidRequest(f"{spec.name} must be an array", param=spec.name)
    if spec.min_items is not None and len(value) < spec.min_items:
        raise InvalidRequest(
            f"{spec.name} requires at least {spec.min_items} item(s) for type {type_name}",
            param=spec.name,
        )
    if spec.max_items is not None and len(value) > spec.max_items:
        exact = spec.min_items == spec.max_items
        raise InvalidRequest(
            f"{spec.name} takes {'exactly' if exact else 'at most'} {spec.max_items} item(s)"
            f"{f' for type {type_name}' if exact else ''}",
            param=spec.name,
        )
    if spec.items == "url":
        return [_check_url(spec, f"{spec.name}[{i}]", v) for i, v in enumerate(value)]
    return list(value)
