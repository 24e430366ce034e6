"""OpenAI's `size` onto a model's params, by the rules its `[openai]` table declares."""

import math

from mediagate.catalog.openai_rules import SIZE
from mediagate.catalog.spec import ModelSpec
from mediagate.openai_compat.errors import OpenAIError

NEAREST = 3


def size_params(model: ModelSpec, size: str | None) -> dict[str, str]:
    """The params `size` stands for (the model's defaults for none or `auto`)."""
    rules = model.openai
    if size is None or size == "auto":
        return dict(rules.sizes[rules.default_size]) if rules.default_size else {}
    if size in rules.sizes:
        return dict(rules.sizes[size])
    if not rules.sizes:
        raise OpenAIError(
            400,
            f"Model {model.id} takes no size (leave it out or pass auto)",
            param="size",
            code="unsupported_size",
        )
    nearest = nearest_sizes(size, list(rules.sizes))
    shape = "" if SIZE.match(size) else " (sizes are WIDTHxHEIGHT, e.g. 1024x1024)"
    raise OpenAIError(
        400,
        f"Size {size!r} is not supported by {model.id}{shape}; nearest supported: "
        f"{', '.join(nearest)} (all: {', '.join(rules.sizes)}, or auto)",
        param="size",
        code="unsupported_size",
    )


def nearest_sizes(size: str, supported: list[str], count: int = NEAREST) -> list[str]:
    """The supported sizes closest in shape first, then in pixel count (log scales)."""
    if not SIZE.match(size):
        return supported[:count]
    width, height = _dimensions(size)

    def distance(candidate: str) -> tuple[float, float]:
        w, h = _dimensions(candidate)
        return (
            round(abs(math.log((w / h) / (width / height))), 2),
            abs(math.log((w * h) / (width * height))),
        )

    return sorted(supported, key=distance)[:count]


def _dimensions(size: str) -> tuple[int, int]:
    width, _, height = size.partition("x")
    return int(width), int(height)
