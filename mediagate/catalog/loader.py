"""Load model declarations (*.toml) into the catalog."""

import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mediagate.catalog.openai_rules import parse_openai_rules
from mediagate.catalog.pricing import parse_price
from mediagate.catalog.spec import (
    ENDPOINTS,
    InputRules,
    ModelSpec,
    ParamSpec,
    SandboxRules,
    TaskType,
    override_param,
    parse_param,
)
from mediagate.catalog.upstream import parse_routes
from mediagate.core.errors import NotFound

BUILTIN_DIR = Path(__file__).parent / "models"


class Catalog:
    """All declared models, by id."""

    def __init__(self, specs: Iterable[ModelSpec]) -> None:
        self.models: dict[str, ModelSpec] = {}
        for spec in sorted(specs, key=lambda m: m.position):  # stable: file order after
            if spec.id in self.models:
                raise ValueError(f"model {spec.id} declared twice")
            self.models[spec.id] = spec

    def get(self, model_id: str) -> ModelSpec:
        try:
            return self.models[model_id]
        except KeyError:
            raise NotFound(f"Unknown model {model_id!r}", param="model") from None

    def for_endpoint(self, endpoint: str) -> list[ModelSpec]:
        return [m for m in self.models.values() if m.endpoint == endpoint]


def load_catalog(extra_dirs: Iterable[Path] = ()) -> Catalog:
    paths: list[Path] = []
    for directory in (BUILTIN_DIR, *extra_dirs):
        paths.extend(sorted(Path(directory).glob("*.toml")))
    return Catalog(load_spec(p) for p in paths)


def load_spec(path: Path) -> ModelSpec:
    try:
        return parse_spec(tomllib.loads(path.read_text()))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: invalid model declaration: {exc}") from exc


def parse_spec(raw: dict[str, Any]) -> ModelSpec:
    params = {name: parse_param(name, p) for name, p in raw["params"].items()}
    if "type" in params or "model" in params:
        raise ValueError("'model' and 'type' are reserved parameter names")
    types: dict[str, TaskType] = {}
    for name, t in raw["types"].items():
        overrides = t.get("params", {})
        unknown = set(overrides) - set(params)
        if unknown:
            raise ValueError(f"type {name} overrides undeclared params {sorted(unknown)}")
        merged = {
            p: override_param(spec, overrides[p]) if p in overrides else spec
            for p, spec in params.items()
        }
        price = parse_price(t["price"], merged, f"type {name}")
        types[name] = TaskType(name, price, t.get("description", ""), merged)
    default_type = raw.get("default_type", next(iter(types)))
    if default_type not in types:
        raise ValueError(f"default_type {default_type!r} is not a declared type")
    if raw["endpoint"] not in ENDPOINTS:
        raise ValueError(f"endpoint must be one of {list(ENDPOINTS)}")
    inputs = _parse_inputs(raw.get("inputs", {}))
    routes = parse_routes(raw["routes"], types, inputs.formats)
    return ModelSpec(
        id=raw["id"],
        name=raw["name"],
        vendor=raw.get("vendor", ""),
        endpoint=raw["endpoint"],
        summary=raw.get("summary", ""),
        description=raw.get("description", "").strip(),
        capabilities=tuple(raw.get("capabilities", ())),
        deadline_s=int(raw.get("deadline_s", 900)),
        default_type=default_type,
        types=types,
        params=params,
        inputs=inputs,
        routes=routes,
        faq=tuple((f["q"], f["a"]) for f in raw.get("faq", ())),
        position=int(raw.get("position", 100)),
        openai=parse_openai_rules(raw.get("openai", {}), types, default_type),
        sandbox=_parse_sandbox(raw.get("sandbox", {}), params),
        sources=_parse_sources(raw.get("sources", [])),
    )


def _parse_sources(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(
        isinstance(u, str) and u.startswith(("https://", "http://")) for u in raw
    ):
        raise ValueError("sources: must be a list of documentation URLs")
    return tuple(raw)


def _parse_sandbox(raw: dict[str, Any], params: dict[str, ParamSpec]) -> SandboxRules:
    """`[sandbox]`: `size_from` (an enum param) and `sizes` ("WxH" for each of its values)."""
    unknown = set(raw) - {"size_from", "sizes"}
    if unknown:
        raise ValueError(f"sandbox: unknown keys {sorted(unknown)}")
    size_from = raw.get("size_from")
    if size_from is None:
        if "sizes" in raw:
            raise ValueError("sandbox: sizes needs size_from")
        return SandboxRules()
    spec = params.get(size_from)
    if spec is None or not spec.enum:
        raise ValueError(f"sandbox.size_from: {size_from!r} is not an enum param")
    sizes: dict[str, tuple[int, int]] = {}
    for value, text in raw.get("sizes", {}).items():
        width, _, height = str(text).partition("x")
        if not (width.isdigit() and height.isdigit()) or not int(width) or not int(height):
            raise ValueError(f"sandbox.sizes.{value}: {text!r} is not a size like 1024x768")
        sizes[value] = (int(width), int(height))
    uncovered = [v for v in spec.enum if v not in sizes]
    if uncovered or set(sizes) - set(spec.enum):
        raise ValueError(f"sandbox.sizes: must give a size for exactly {list(spec.enum)}")
    return SandboxRules(size_from=size_from, sizes=sizes)


def _parse_inputs(raw: dict[str, Any]) -> InputRules:
    unknown = set(raw) - set(InputRules.__dataclass_fields__)
    if unknown:
        raise ValueError(f"inputs: unknown keys {sorted(unknown)}")
    default = InputRules()
    return InputRules(
        formats=tuple(raw.get("formats", default.formats)),
        min_side=int(raw.get("min_side", default.min_side)),
        max_aspect=float(raw.get("max_aspect", default.max_aspect)),
        max_bytes=int(raw.get("max_bytes", default.max_bytes)),
        max_pixels=int(raw.get("max_pixels", default.max_pixels)),
        max_decoded_bytes=int(raw.get("max_decoded_bytes", default.max_decoded_bytes)),
    )
