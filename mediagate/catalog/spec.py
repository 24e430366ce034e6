"""Model declarations: what a model takes, what it costs, where it is routed."""

from dataclasses import dataclass, field, replace
from typing import Any, Literal

ParamType = Literal["string", "integer", "array", "url"]


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: ParamType
    description: str = ""
    required: bool = False
    default: Any = None
    enum: tuple[str, ...] | None = None
    case_insensitive: bool = False
    trim: bool = False
    min_length: int | None = None
    max_length: int | None = None
    minimum: int | None = None
    maximum: int | None = None
    items: ParamType | None = None
    min_items: int | None = None
    max_items: int | None = None
    item_max_length: int | None = None
    schemes: tuple[str, ...] = ("http", "https")
    example: Any = None


@dataclass(frozen=True)
class TaskType:
    name: str
    price: int
    description: str
    params: dict[str, ParamSpec]
    """The model's params with this type's overrides applied."""


@dataclass(frozen=True)
class Route:
    provider: str
    types: tuple[str, ...]


@dataclass(frozen=True)
class InputRules:
    formats: tuple[str, ...] = ("jpeg", "png", "webp")
    min_side: int = 1
    max_aspect: float = 100.0
    max_bytes: int = 10_000_000
    max_pixels: int = 36_000_000


@dataclass(frozen=True)
class OpenAIRules:
    """How the OpenAI-compatible door (/v1/images/...) maps OpenAI's request onto this
    model's params: the model file's `[openai]` table, checked at load
    (catalog/openai_rules.py). Absent: only `n` = 1 and no `size` (or `auto`) work."""

    type: str | None = None
    """The task type the door submits (default: the model's default type)."""
    n: str | None = None
    """The integer param that takes OpenAI's `n`."""
    images: str | None = None
    """The array param that takes /v1/images/edits' images (as URLs of their uploads)."""
    default_size: str | None = None
    """The size used when the request names none (or `auto`)."""
    sizes: dict[str, dict[str, str]] = field(default_factory=dict)
    """OpenAI `size` ("1024x1024") -> the model's params for it ({"aspect_ratio": "1:1"})."""


@dataclass(frozen=True)
class ModelSpec:
    id: str
    name: str
    vendor: str
    endpoint: str
    summary: str
    description: str
    capabilities: tuple[str, ...]
    deadline_s: int
    default_type: str
    types: dict[str, TaskType]
    params: dict[str, ParamSpec]
    inputs: InputRules
    routes: tuple[Route, ...]
    faq: tuple[tuple[str, str], ...] = field(default=())
    openai: OpenAIRules = field(default_factory=OpenAIRules)

    def task_type(self, name: str) -> TaskType:
        return self.types[name]

    def routes_for(self, type_name: str) -> list[str]:
        return [r.provider for r in self.routes if type_name in r.types]


PARAM_KEYS = {f for f in ParamSpec.__dataclass_fields__ if f != "name"}


def parse_param(name: str, raw: dict[str, Any]) -> ParamSpec:
    unknown = set(raw) - PARAM_KEYS
    if unknown:
        raise ValueError(f"param {name}: unknown keys {sorted(unknown)}")
    values = dict(raw)
    for key in ("enum", "schemes"):
        if key in values:
            values[key] = tuple(values[key])
    return ParamSpec(name=name, **values)


def override_param(base: ParamSpec, raw: dict[str, Any]) -> ParamSpec:
    unknown = set(raw) - PARAM_KEYS
    if unknown:
        raise ValueError(f"param {base.name}: unknown override keys {sorted(unknown)}")
    return replace(base, **raw)
