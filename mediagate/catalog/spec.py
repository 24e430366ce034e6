"""Model declarations: what a model takes, what it costs, where it is routed."""

import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from mediagate.catalog.pricing import PriceRule

ParamType = Literal["string", "integer", "number", "boolean", "array", "url"]


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: ParamType
    description: str = ""
    required: bool = False
    default: Any = None
    enum: tuple[str, ...] | tuple[int, ...] | None = None
    """Allowed values: strings for a string param, integers for an integer one."""
    case_insensitive: bool = False
    trim: bool = False
    min_length: int | None = None
    max_length: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    items: ParamType | None = None
    min_items: int | None = None
    max_items: int | None = None
    item_max_length: int | None = None
    schemes: tuple[str, ...] = ("http", "https")
    example: Any = None
    gateway: bool = False
    """Handled by the gateway itself (e.g. callback_url): never sent to a provider, so
    routes need not map it."""


OutputKind = Literal["image", "video"]
IMAGE_ENDPOINT = "images/generations"
VIDEO_ENDPOINT = "videos/generations"
ENDPOINTS = (IMAGE_ENDPOINT, VIDEO_ENDPOINT)


@dataclass(frozen=True)
class TaskType:
    name: str
    price: PriceRule
    """What a task of this type costs, computed from its params (catalog/pricing.py)."""
    description: str
    params: dict[str, ParamSpec]
    """The model's params with this type's overrides applied."""


REFERENCE_PARAM = "images"
"""The param holding reference image URLs (API.md): the prepare step fetches and checks
them, and routes receive them in the form they accept (see RouteTask.transports)."""
REFERENCE_FORMATS = ("jpeg", "png", "webp")
Transport = Literal["url", "stored_url", "base64", "data_uri"]
TRANSPORTS: tuple[Transport, ...] = ("url", "stored_url", "base64", "data_uri")
"""How a reference reaches a provider: `url` the user's own URL; `stored_url` our checked
(and, if needed, converted) copy at our public URL; `base64` the bare Base64 of that copy;
`data_uri` the same as a `data:` URI."""


@dataclass(frozen=True)
class FieldMap:
    """One field of the upstream body, computed from one of our params."""

    source: str
    """Our param (`from` in the file)."""
    values: dict[str, Any] | None = None
    """Our value -> the provider's (covers every value of an enum param)."""
    case: Literal["upper", "lower"] | None = None
    prompt_refs: str | None = None
    """How the provider spells `<<<image_N>>>` in a prompt, with `{n}` for N."""
    item: str | None = None
    """Send a list as objects: each element `x` as `{item: x}`."""
    first: bool = False
    """Send only the first element of a list (absent when the list is empty)."""
    index: int | None = None
    """Send only element `index` of a list (absent when the list is shorter): a video
    model's last frame is `images[1]`."""
    omit_empty: bool = False
    """Leave the field out when the value is empty."""


ENDPOINT_PARAM = re.compile(r"\{([A-Za-z_]\w*)\}")
"""A `{param}` in an endpoint: the provider names one model id per value of that param
(WaveSpeed's bytedance/seedance-v1-pro-t2v-{resolution})."""


@dataclass(frozen=True)
class RouteTask:
    """Everything provider-specific about serving one task type of a model."""

    endpoint: str
    """The upstream endpoint or model id (fal app id, WaveSpeed model id, Kling path);
    `{param}` in it is replaced by that param's value (an enum or boolean param)."""
    fields: dict[str, FieldMap]
    constants: dict[str, Any] = field(default_factory=dict)
    """Upstream fields with a fixed value (e.g. Kling's `model_name`)."""
    requires: tuple[str, ...] = ()
    """Our params that must be non-empty for this route (e.g. fal o1 needs images)."""
    unsupported: tuple[str, ...] = ()
    """Our params this route cannot honour: a task that sets one to anything but its
    default goes to another route, or is refused before any hold."""
    ignored: tuple[str, ...] = ()
    """Our params this task type does not use (stated on purpose, never silently)."""
    formats: tuple[str, ...] = REFERENCE_FORMATS
    """Reference formats the provider documents; others are converted from our copy."""
    transports: tuple[Transport, ...] = ("url",)
    """How references may be sent, in order of preference."""
    lookup: bool = False
    """The provider finds a task by our reference (safe replay of an interrupted submit)."""
    results: tuple[str, ...] = ()
    """Where result URLs are in the provider's answer: paths like `images[].url`."""
    flags: str | None = None
    """Where per-output safety flags are (e.g. `has_nsfw_contents[]`), if the answer has them."""

    @property
    def endpoint_params(self) -> tuple[str, ...]:
        """Our params the endpoint itself carries (`{resolution}`)."""
        return tuple(ENDPOINT_PARAM.findall(self.endpoint))

    def endpoint_for(self, params: dict[str, Any]) -> str:
        """The endpoint with each `{param}` replaced by its value (true/false, 720p)."""

        def spelled(match: re.Match[str]) -> str:
            value = params.get(match.group(1))
            return ("true" if value else "false") if isinstance(value, bool) else str(value)

        return ENDPOINT_PARAM.sub(spelled, self.endpoint)

    def eligible(
        self, params: dict[str, Any], declared: dict[str, "ParamSpec"]
    ) -> tuple[str, str] | None:
        """None if this route can serve `params`; else the param it cannot, and why."""
        for name in self.requires:
            if not params.get(name):
                return name, f"needs {name}"
        for name in self.unsupported:
            value = params.get(name)
            spec = declared.get(name)
            if value not in (None, [], "") and (spec is None or value != spec.default):
                return name, f"cannot honour {name}"
        return None


@dataclass(frozen=True)
class Route:
    provider: str
    tasks: dict[str, RouteTask]

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(self.tasks)


@dataclass(frozen=True)
class InputRules:
    formats: tuple[str, ...] = ("jpeg", "png", "webp")
    min_side: int = 1
    max_aspect: float = 100.0
    max_bytes: int = 10_000_000
    max_pixels: int = 36_000_000
    max_decoded_bytes: int = 128 * 1024 * 1024
    """Bytes of memory decoding one reference may take at once (mode, bit depth and
    frames counted as Pillow holds them: media/images.py `decoded_bytes`). A small file
    can decode to hundreds of MB; the sandbox decodes every reference it draws."""


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
class SandboxRules:
    """How the sandbox sizes a test-mode output when the model's size param is not an
    aspect ratio (the model file's `[sandbox]` table, checked at load): `size_from`
    names an enum param and `sizes` gives the pixel size of each of its values."""

    size_from: str | None = None
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)

    def output_size(self, params: dict[str, Any]) -> tuple[int, int] | None:
        """The declared (width, height) for these params; None: size by aspect ratio."""
        if self.size_from is None:
            return None
        return self.sizes.get(str(params.get(self.size_from)))


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
    position: int = 100
    """Place in /models, the console and /api/v1/models (lower first, then by file name)."""
    openai: OpenAIRules = field(default_factory=OpenAIRules)
    sandbox: SandboxRules = field(default_factory=SandboxRules)
    sources: tuple[str, ...] = ()
    """The documentation the declaration was made from (the file's `sources`)."""

    def task_type(self, name: str) -> TaskType:
        return self.types[name]

    @property
    def output(self) -> "OutputKind":
        """What the model's tasks produce, from the route it is served on."""
        return "video" if self.endpoint == VIDEO_ENDPOINT else "image"

    def routes_for(self, type_name: str) -> list[str]:
        return [r.provider for r in self.routes if type_name in r.tasks]

    def route(self, provider: str, type_name: str) -> RouteTask | None:
        """What `provider` needs to serve `type_name` (None: not declared, e.g. the sandbox)."""
        for r in self.routes:
            if r.provider == provider and type_name in r.tasks:
                return r.tasks[type_name]
        return None


PARAM_KEYS = {f for f in ParamSpec.__dataclass_fields__ if f != "name"}


def parse_param(name: str, raw: dict[str, Any]) -> ParamSpec:
    unknown = set(raw) - PARAM_KEYS
    if unknown:
        raise ValueError(f"param {name}: unknown keys {sorted(unknown)}")
    values = dict(raw)
    for key in ("enum", "schemes"):
        if key in values:
            values[key] = tuple(values[key])
    spec = ParamSpec(name=name, **values)
    check_param(spec)
    return spec


ENUM_TYPES: dict[str, type] = {"string": str, "integer": int}


def check_param(spec: ParamSpec) -> None:
    """A declaration that contradicts itself stops the load (e.g. a string in an integer
    enum, or a default outside the enum)."""
    if spec.enum is not None:
        kind = ENUM_TYPES.get(spec.type)
        if kind is None:
            raise ValueError(f"param {spec.name}: enum applies to string and integer params")
        if not spec.enum or not all(
            isinstance(v, kind) and not isinstance(v, bool) for v in spec.enum
        ):
            raise ValueError(f"param {spec.name}: enum must list {spec.type} values")
        if spec.default is not None and spec.default not in spec.enum:
            raise ValueError(f"param {spec.name}: default {spec.default!r} is not in enum")
    if spec.type == "boolean" and spec.default is not None and not isinstance(spec.default, bool):
        raise ValueError(f"param {spec.name}: a boolean default must be true or false")


def override_param(base: ParamSpec, raw: dict[str, Any]) -> ParamSpec:
    unknown = set(raw) - PARAM_KEYS
    if unknown:
        raise ValueError(f"param {base.name}: unknown override keys {sorted(unknown)}")
    values = dict(raw)
    if "enum" in values:
        values["enum"] = tuple(values["enum"])
    spec = replace(base, **values)
    check_param(spec)
    return spec
