"""Param types boolean and number, integer enums, and the route option `index`: checked
at load, validated with a 400 naming the param, in the JSON Schema, mapped upstream."""

from pathlib import Path
from typing import Any

import pytest

from mediagate.catalog.loader import Catalog, load_spec
from mediagate.catalog.schemas import limits_text, param_schema
from mediagate.catalog.spec import ModelSpec
from mediagate.catalog.validation import validate_request
from mediagate.core.errors import InvalidRequest
from mediagate.providers.base import ProviderRequest
from mediagate.providers.mapping import upstream_body

CLIP = """
id = "test-clip"
name = "Test Clip"
endpoint = "videos/generations"
default_type = "clip"

[types.clip]
price = { credits = { "true" = 3, "false" = 2 }, by = ["loud"], per = "duration", unit = "second" }
description = "Clip."

[params.prompt]
type = "string"
required = true

[params.images]
type = "array"
items = "url"
default = []
max_items = 2

[params.duration]
type = "integer"
enum = [5, 10]
default = 5

[params.loud]
type = "boolean"
default = false

[params.strength]
type = "number"
minimum = 0.0
maximum = 1.0

[[routes]]
provider = "fal"

[routes.tasks.clip]
endpoint = "example/clip"
fields.prompt = "prompt"
fields.start = { from = "images", first = true }
fields.end = { from = "images", index = 1 }
fields.duration = { from = "duration", values = { "5" = "5s", "10" = "10s" } }
fields.audio = { from = "loud", values = { "true" = "on", "false" = "off" } }
fields.strength = "strength"
results = ["video.url"]
"""


def clip(tmp_path: Path, text: str = CLIP) -> ModelSpec:
    path = tmp_path / "clip.toml"
    path.write_text(text)
    return load_spec(path)


def validate(tmp_path: Path, **fields: Any) -> dict[str, Any]:
    catalog = Catalog([clip(tmp_path)])
    body = {"model": "test-clip", "prompt": "p", **fields}
    generation = validate_request(catalog, body, "videos/generations")
    return {"price": generation.price, **generation.params}


def test_defaults_and_the_price_per_second(tmp_path: Path) -> None:
    params = validate(tmp_path)
    assert params == {"price": 10, "prompt": "p", "images": [], "duration": 5, "loud": False}
    assert validate(tmp_path, duration=10, loud=True)["price"] == 30
    assert validate(tmp_path, strength=1)["strength"] == 1.0
    assert validate(tmp_path, strength=0.25)["strength"] == 0.25


@pytest.mark.parametrize(
    ("fields", "param", "message"),
    [
        ({"duration": 7}, "duration", "duration must be one of: 5, 10"),
        ({"duration": 5.0}, "duration", "duration must be an integer"),
        ({"duration": True}, "duration", "duration must be an integer"),
        ({"duration": "5"}, "duration", "duration must be an integer"),
        ({"loud": 1}, "loud", "loud must be true or false"),
        ({"loud": "true"}, "loud", "loud must be true or false"),
        ({"strength": "0.5"}, "strength", "strength must be a number"),
        ({"strength": True}, "strength", "strength must be a number"),
        ({"strength": 1.5}, "strength", "strength must be at most 1.0"),
        ({"strength": -0.1}, "strength", "strength must be at least 0.0"),
        ({"strength": float("nan")}, "strength", "strength must be a number"),
    ],
)
def test_wrong_values_are_a_400_naming_the_param(
    tmp_path: Path, fields: dict[str, Any], param: str, message: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate(tmp_path, **fields)
    assert caught.value.param == param and str(caught.value) == message


@pytest.mark.parametrize(
    ("line", "replacement", "reason"),
    [
        ("enum = [5, 10]", 'enum = ["5", "10"]', "enum must list integer values"),
        ("enum = [5, 10]", "enum = [true, false]", "enum must list integer values"),
        ("enum = [5, 10]\ndefault = 5", "enum = [5, 10]\ndefault = 6", "default 6 is not in enum"),
        ('type = "boolean"\ndefault = false', 'type = "boolean"\ndefault = 0', "true or false"),
        ('type = "boolean"', 'type = "boolean"\nenum = [true]', "enum applies to string"),
        ('values = { "5" = "5s", "10" = "10s" }', 'values = { "5" = "5s" }', "for [10]"),
        ("index = 1 }", "index = -1 }", "fields.end.index: must be a list position"),
        ("index = 1 }", 'index = "1" }', "fields.end.index: must be a list position"),
        ("index = 1 }", "index = 1, first = true }", "use one"),
        (
            'fields.strength = "strength"',
            'fields.strength = { from = "strength", index = 0 }',
            "lists",
        ),
        ('endpoint = "videos/generations"', 'endpoint = "audio/speech"', "endpoint must be one of"),
    ],
)
def test_declaration_mistakes_stop_the_load(
    tmp_path: Path, line: str, replacement: str, reason: str
) -> None:
    assert line in CLIP
    with pytest.raises(ValueError, match=r"clip\.toml") as caught:
        clip(tmp_path, CLIP.replace(line, replacement, 1))
    assert reason in str(caught.value), caught.value


def test_json_schema_and_limits_of_the_new_types(tmp_path: Path) -> None:
    params = clip(tmp_path).params
    assert param_schema(params["duration"]) == {"type": "integer", "default": 5, "enum": [5, 10]}
    assert param_schema(params["loud"]) == {"type": "boolean", "default": False}
    assert param_schema(params["strength"]) == {"type": "number", "minimum": 0.0, "maximum": 1.0}
    assert limits_text(params["duration"]) == "one of 5, 10"


def request_for(model: ModelSpec, **params: Any) -> ProviderRequest:
    return ProviderRequest(
        reference="task_1",
        model=model.id,
        type="clip",
        params={"prompt": "p", "duration": 5, "loud": False, **params},
        route=model.route("fal", "clip"),
        output=model.output,
    )


def test_index_sends_one_element_and_values_map_integers_and_booleans(tmp_path: Path) -> None:
    model = clip(tmp_path)
    route = model.route("fal", "clip")
    assert route is not None and model.output == "video"
    both = upstream_body(route, request_for(model, images=["https://a/1.png", "https://a/2.png"]))
    assert both == {
        "prompt": "p",
        "start": "https://a/1.png",
        "end": "https://a/2.png",
        "duration": "5s",
        "audio": "off",
    }
    one = upstream_body(route, request_for(model, images=["https://a/1.png"], loud=True))
    assert "end" not in one and one["start"] == "https://a/1.png" and one["audio"] == "on"
    none = upstream_body(route, request_for(model, images=[], duration=10, strength=0.5))
    assert "start" not in none and "end" not in none
    assert none["duration"] == "10s" and none["strength"] == 0.5
