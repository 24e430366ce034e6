"""The `[openai]` table of a model file, checked at load: every size maps to values the
model's own rules accept, so a size the door advertises can never fail validation."""

import re
from typing import Any

from mediagate.catalog.spec import OpenAIRules, TaskType

RULE_KEYS = {"type", "n", "images", "default_size", "sizes"}
SIZE = re.compile(r"^[1-9][0-9]{1,4}x[1-9][0-9]{1,4}$")


def parse_openai_rules(
    raw: dict[str, Any], types: dict[str, TaskType], default_type: str
) -> OpenAIRules:
    unknown = set(raw) - RULE_KEYS
    if unknown:
        raise ValueError(f"openai: unknown keys {sorted(unknown)}")
    type_name = raw.get("type", default_type)
    if type_name not in types:
        raise ValueError(f"openai.type {type_name!r} is not a declared type")
    params = types[type_name].params
    n, images = raw.get("n"), raw.get("images")
    if n is not None and (n not in params or params[n].type != "integer"):
        raise ValueError(f"openai.n must name an integer param, not {n!r}")
    if images is not None and (
        images not in params or params[images].type != "array" or params[images].items != "url"
    ):
        raise ValueError(f"openai.images must name an array-of-URLs param, not {images!r}")
    sizes: dict[str, dict[str, str]] = {}
    for size, values in raw.get("sizes", {}).items():
        if not SIZE.match(size):
            raise ValueError(f"openai.sizes: {size!r} is not WIDTHxHEIGHT")
        for name, value in values.items():
            spec = params.get(name)
            if spec is None or spec.type != "string":
                raise ValueError(f"openai.sizes.{size}: {name!r} is not a string param")
            if spec.enum is not None and value not in spec.enum:
                raise ValueError(
                    f"openai.sizes.{size}: {name} = {value!r} is not one of {list(spec.enum)}"
                )
        sizes[size] = dict(values)
    default_size = raw.get("default_size")
    if default_size is not None and default_size not in sizes:
        raise ValueError(f"openai.default_size {default_size!r} is not among openai.sizes")
    return OpenAIRules(type_name, n, images, default_size, sizes)
