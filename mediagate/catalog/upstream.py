"""Parse and check a model's `[[routes]]` tables: what each provider needs to serve it.

Everything is checked when the catalog loads, so a mistake in a declaration stops the
server at start with the file and the key (`routes[2].tasks.image-to-image.fields.n`),
never a task at run time.
"""

import re
from typing import Any

from mediagate.catalog.spec import (
    ENDPOINT_PARAM,
    REFERENCE_FORMATS,
    REFERENCE_PARAM,
    TRANSPORTS,
    FieldMap,
    ParamSpec,
    Route,
    RouteTask,
    TaskType,
)

TASK_KEYS = {f for f in RouteTask.__dataclass_fields__} | {"fields"}
FIELD_KEYS = {"from", "values", "case", "prompt_refs", "item", "first", "index", "omit_empty"}
PATH = re.compile(r"^[A-Za-z_][\w]*(\[\])?(\.[A-Za-z_][\w]*(\[\])?)*$")
CONVERTING = ("stored_url", "base64", "data_uri")


class RouteError(ValueError):
    """A route declaration is wrong; the message starts with the key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")


def parse_routes(
    raw: list[dict[str, Any]], types: dict[str, TaskType], reference_formats: tuple[str, ...]
) -> tuple[Route, ...]:
    routes = []
    for i, r in enumerate(raw):
        key = f"routes[{i}]"
        unknown = set(r) - {"provider", "tasks"}
        if unknown:
            raise RouteError(key, f"unknown keys {sorted(unknown)}")
        provider = r.get("provider")
        if not isinstance(provider, str) or not provider:
            raise RouteError(f"{key}.provider", "must name a provider")
        tasks = r.get("tasks")
        if not isinstance(tasks, dict) or not tasks:
            raise RouteError(f"{key}.tasks", "declare [routes.tasks.<type>] for each type served")
        parsed = {}
        for type_name, t in tasks.items():
            where = f"{key}.tasks.{type_name}"
            if type_name not in types:
                raise RouteError(where, f"{type_name!r} is not a declared type")
            parsed[type_name] = _parse_task(where, t, types[type_name], reference_formats)
        routes.append(Route(provider=provider, tasks=parsed))
    return tuple(routes)


def _parse_task(
    where: str, raw: Any, task_type: TaskType, reference_formats: tuple[str, ...]
) -> RouteTask:
    if not isinstance(raw, dict):
        raise RouteError(where, "must be a table")
    unknown = set(raw) - TASK_KEYS
    if unknown:
        raise RouteError(where, f"unknown keys {sorted(unknown)}")
    endpoint = raw.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise RouteError(f"{where}.endpoint", "must name the upstream endpoint or model id")
    params = task_type.params
    fields = {
        name: _parse_field(f"{where}.fields.{name}", f, params)
        for name, f in _table(f"{where}.fields", raw.get("fields", {})).items()
    }
    constants = _table(f"{where}.constants", raw.get("constants", {}))
    clash = set(constants) & set(fields)
    if clash:
        raise RouteError(f"{where}.constants", f"{sorted(clash)} are also mapped fields")
    lists = {
        name: _names(f"{where}.{name}", raw.get(name, []), params)
        for name in ("requires", "unsupported", "ignored")
    }
    in_endpoint = _endpoint_params(f"{where}.endpoint", endpoint, params)
    mapped = {f.source for f in fields.values()}
    handled = mapped | {n for names in lists.values() for n in names} | set(in_endpoint)
    missing = [n for n, p in params.items() if n not in handled and not p.gateway]
    if missing:
        raise RouteError(
            where,
            f"params {missing} are neither mapped in fields nor listed as unsupported or "
            "ignored (a param is never dropped silently)",
        )
    formats = tuple(raw.get("formats", REFERENCE_FORMATS))
    bad = [f for f in formats if f not in REFERENCE_FORMATS]
    if bad:
        raise RouteError(f"{where}.formats", f"unknown formats {bad}")
    transports = tuple(raw.get("transports", ("url",)))
    bad = [t for t in transports if t not in TRANSPORTS]
    if bad or not transports:
        raise RouteError(f"{where}.transports", f"must be some of {list(TRANSPORTS)}")
    needs_conversion = [f for f in reference_formats if f not in formats]
    if REFERENCE_PARAM in mapped and needs_conversion and not set(transports) & set(CONVERTING):
        raise RouteError(
            f"{where}.transports",
            f"{needs_conversion} references must be converted, which needs one of "
            f"{list(CONVERTING)}",
        )
    results = raw.get("results")
    if not isinstance(results, list) or not results:
        raise RouteError(f"{where}.results", "list where result URLs are, e.g. images[].url")
    for path in [*results, *([raw["flags"]] if "flags" in raw else [])]:
        if not isinstance(path, str) or not PATH.match(path):
            raise RouteError(f"{where}.results", f"{path!r} is not a path like images[].url")
    lookup = raw.get("lookup", False)
    if not isinstance(lookup, bool):
        raise RouteError(f"{where}.lookup", "must be true or false")
    return RouteTask(
        endpoint=endpoint,
        fields=fields,
        constants=constants,
        requires=lists["requires"],
        unsupported=lists["unsupported"],
        ignored=lists["ignored"],
        formats=formats,
        transports=transports,
        lookup=lookup,
        results=tuple(results),
        flags=raw.get("flags"),
    )


def _endpoint_params(where: str, endpoint: str, params: dict[str, ParamSpec]) -> list[str]:
    """The params an endpoint names (`{resolution}`): each must have a finite set of
    values (an enum or a boolean), so every upstream model id it can make is known."""
    names = ENDPOINT_PARAM.findall(endpoint)
    for name in names:
        spec = params.get(name)
        if spec is None:
            raise RouteError(where, f"{{{name}}} is not a param of this type")
        if spec.enum is None and spec.type != "boolean":
            raise RouteError(where, f"{{{name}}} must name an enum or boolean param")
    return names


def _parse_field(where: str, raw: Any, params: dict[str, ParamSpec]) -> FieldMap:
    if isinstance(raw, str):
        raw = {"from": raw}
    if not isinstance(raw, dict):
        raise RouteError(where, 'must be a param name or a table like { from = "prompt" }')
    unknown = set(raw) - FIELD_KEYS
    if unknown:
        raise RouteError(where, f"unknown keys {sorted(unknown)}")
    source = raw.get("from")
    if source not in params:
        raise RouteError(f"{where}.from", f"{source!r} is not a param of this type")
    spec = params[source]
    values = raw.get("values")
    if values is not None:
        if not isinstance(values, dict):
            raise RouteError(f"{where}.values", "must be a table of our value = theirs")
        uncovered = [v for v in spec.enum or () if value_key(v) not in values]
        if uncovered:
            raise RouteError(f"{where}.values", f"no upstream value for {uncovered}")
    case = raw.get("case")
    if case not in (None, "upper", "lower"):
        raise RouteError(f"{where}.case", 'must be "upper" or "lower"')
    refs = raw.get("prompt_refs")
    if refs is not None and (not isinstance(refs, str) or "{n}" not in refs):
        raise RouteError(f"{where}.prompt_refs", 'must contain {n}, e.g. "@Image{n}"')
    index = raw.get("index")
    if index is not None and (isinstance(index, bool) or not isinstance(index, int) or index < 0):
        raise RouteError(f"{where}.index", "must be a list position (0, 1, ...)")
    if index is not None and raw.get("first"):
        raise RouteError(where, "first and index are two ways to pick one element: use one")
    if (raw.get("item") or raw.get("first") or index is not None) and spec.type != "array":
        raise RouteError(where, f"item, first and index apply to lists; {source} is a {spec.type}")
    return FieldMap(
        source=source,
        values=values,
        case=case,
        prompt_refs=refs,
        item=raw.get("item"),
        first=bool(raw.get("first", False)),
        index=index,
        omit_empty=bool(raw.get("omit_empty", False)),
    )


def value_key(value: Any) -> str:
    """How one of our values is spelled as a key of `values` (TOML keys are strings):
    `5`, `true`/`false`, or the string itself."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _table(where: str, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise RouteError(where, "must be a table")
    return raw


def _names(where: str, raw: Any, params: dict[str, ParamSpec]) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(n, str) for n in raw):
        raise RouteError(where, "must be a list of param names")
    unknown = [n for n in raw if n not in params]
    if unknown:
        raise RouteError(where, f"{unknown} are not params of this type")
    return tuple(raw)
