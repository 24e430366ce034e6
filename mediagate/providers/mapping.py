"""A route's declaration applied: our params to the provider's body, and its answer back
to result URLs. The same for every provider; adapters add only their protocol."""

import re
from typing import Any, Literal

from mediagate.catalog.spec import REFERENCE_PARAM, FieldMap, RouteTask
from mediagate.catalog.upstream import value_key
from mediagate.providers.base import PollResult, ProviderRequest
from mediagate.providers.errors import ProviderRetryable

OUR_IMAGE_REF = re.compile(r"<<<image_(\d+)>>>")


def effective_params(request: ProviderRequest) -> dict[str, Any]:
    """Our params as sent: `auto` aspect ratios resolved in prepare (the same ratio on
    every route, as the model page states)."""
    params = dict(request.params)
    resolved = request.prepared.get("aspect_ratio")
    if params.get("aspect_ratio") == "auto" and resolved:
        params["aspect_ratio"] = resolved
    return params


def upstream_body(route: RouteTask, request: ProviderRequest) -> dict[str, Any]:
    """The provider's request body for this task, per the route's declaration."""
    params = effective_params(request)
    body: dict[str, Any] = dict(route.constants)
    for name, field in route.fields.items():
        if field.source == REFERENCE_PARAM and request.references is not None:
            value: Any = list(request.references)
        else:
            value = params.get(field.source)
        value = _convert(field, value)
        if value is None or (field.omit_empty and value in ([], "")):
            continue
        body[name] = value
    return body


def _convert(field: FieldMap, value: Any) -> Any:
    if value is None:
        return None
    if field.first or field.index is not None:
        position = field.index or 0
        value = value[position] if isinstance(value, list) and len(value) > position else None
        if value is None:
            return None
    if isinstance(value, str):
        value = _one(field, value)
    elif field.values is not None and isinstance(value, int | float):
        value = field.values.get(value_key(value), value)  # e.g. duration 5 -> "5s"
    elif isinstance(value, list):
        value = [_one(field, v) if isinstance(v, str) else v for v in value]
    if field.item is not None and isinstance(value, list):
        value = [{field.item: v} for v in value]
    return value


def _one(field: FieldMap, value: str) -> Any:
    if field.prompt_refs is not None:
        template = field.prompt_refs
        value = OUR_IMAGE_REF.sub(lambda m: template.replace("{n}", m.group(1)), value)
    if field.values is not None:
        return field.values.get(value, value)
    if field.case == "upper":
        return value.upper()
    if field.case == "lower":
        return value.lower()
    return value


def find(path: str, answer: Any) -> list[Any]:
    """Every value at `path` (`a.b[].c`: `[]` walks a list) in `answer`, in order."""
    current: list[Any] = [answer]
    for part in path.split("."):
        walk = part.endswith("[]")
        key = part.removesuffix("[]")
        found: list[Any] = []
        for node in current:
            value = node.get(key) if isinstance(node, dict) else None
            if walk:
                found.extend(value if isinstance(value, list) else [])
            elif value is not None:
                found.append(value)
        current = found
    return current


def result_urls(route: RouteTask, answer: Any) -> list[str]:
    """The result URLs where the route says they are; several paths may each hold some
    (Kling multi-shot: `url`, or `url_1`..`url_3`)."""
    found: list[str] = []
    for path in route.results:
        found.extend(v for v in find(path, answer) if isinstance(v, str) and v)
    return found


def flagged(route: RouteTask, answer: Any) -> list[bool]:
    """Per-output safety flags, where the route says the answer has them."""
    if route.flags is None:
        return []
    return [v is True for v in find(route.flags, answer)]


FlaggedOutputs = Literal["fail", "drop", "deliver"]


def completion(
    route: RouteTask, answer: Any, *, label: str, flagged_outputs: FlaggedOutputs
) -> PollResult:
    """A finished answer as our result: its URLs, with flagged outputs handled as the
    operator chose (MEDIAGATE_PROVIDER_FLAGGED_OUTPUTS)."""
    urls = result_urls(route, answer)
    if not urls:
        raise ProviderRetryable(label, "finished without result URLs")
    flags = flagged(route, answer)
    if not any(flags) or flagged_outputs == "deliver":
        return PollResult("completed", outputs=urls)
    kept = [url for i, url in enumerate(urls) if not (i < len(flags) and flags[i])]
    if flagged_outputs == "drop" and kept:
        return PollResult("completed", outputs=kept)
    return PollResult(
        "failed",
        error_type="content_policy_violation",
        error_message=(
            f"{label}: the provider flagged {sum(flags)} of {len(urls)} results as unsafe"
        ),
    )
