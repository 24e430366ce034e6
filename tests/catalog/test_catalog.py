"""The declaration drives validation, /api/v1/models and OpenAPI; a second model is one file."""

from pathlib import Path
from typing import Any

import httpx2
import pytest

from mediagate.app import build_runner, create_app
from mediagate.catalog.loader import BUILTIN_DIR, load_catalog, load_spec
from mediagate.core.migrate import upgrade
from tests.factories import KeyFactory

SECOND_MODEL = """
id = "test-painter"
name = "Test Painter"
endpoint = "images/generations"
summary = "A second model, declared only by this file."
capabilities = ["text-to-image"]
deadline_s = 120

[types.paint]
price = 3
description = "Paint."

[params.prompt]
type = "string"
required = true
trim = true
min_length = 1
max_length = 100

[params.aspect_ratio]
type = "string"
enum = ["1:1", "4:3"]
default = "4:3"

[params.num_images]
type = "integer"
default = 2
minimum = 1
maximum = 3

[[routes]]
provider = "wavespeed"

[routes.tasks.paint]
endpoint = "example/painter"
fields.prompt = "prompt"
fields.aspect_ratio = { from = "aspect_ratio", values = { "1:1" = "sq", "4:3" = "landscape" } }
fields.num_images = "num_images"
results = ["outputs[]"]
"""


def test_builtin_declaration() -> None:
    model = load_catalog().get("kling-image-o1")
    assert {t.name: t.price.quote({}) for t in model.types.values()} == {
        "image-to-image": 6,
        "ai-multi-shot": 16,
    }
    assert model.params["aspect_ratio"].enum == (
        "1:1",
        "16:9",
        "9:16",
        "4:3",
        "3:4",
        "3:2",
        "2:3",
        "21:9",
        "auto",
    )
    assert model.types["ai-multi-shot"].params["images"].max_items == 1
    assert model.types["image-to-image"].params["images"].max_items == 10
    assert (model.inputs.min_side, model.inputs.max_aspect, model.inputs.max_bytes) == (
        300,
        2.5,
        10_000_000,
    )
    assert model.routes_for("ai-multi-shot") == ["wavespeed", "kling"]
    assert model.routes_for("image-to-image") == ["wavespeed", "kling", "fal"]


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ('[params.type]\ntype = "string"\n', "reserved"),
        ('[params.prompt]\ntype = "string"\nmax_lenght = 3\n', "unknown keys"),
        ("[types.paint.params.nope]\nmaximum = 1\n", "undeclared params"),
    ],
)
def test_broken_declarations_are_refused_with_the_reason(
    tmp_path: Path, broken: str, message: str
) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(_merge(SECOND_MODEL, broken))
    with pytest.raises(ValueError, match=message):
        load_spec(path)


def _merge(base: str, extra: str) -> str:
    if extra.startswith("[params.prompt]"):
        return base.replace('[params.prompt]\ntype = "string"\n', extra, 1)
    return base + "\n" + extra


@pytest.fixture
def two_model_settings(make_settings: Any, tmp_path: Path) -> Any:
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    (models_dir / "test-painter.toml").write_text(SECOND_MODEL)
    settings = make_settings(catalog_paths=[models_dir])
    upgrade(settings)
    return settings


@pytest.fixture
async def two_model_app(two_model_settings: Any) -> Any:
    app = create_app(two_model_settings)
    async with app.router.lifespan_context(app):
        yield app


async def test_second_model_from_a_data_file_only(two_model_app: Any, keys: KeyFactory) -> None:
    app = two_model_app
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://t"
    ) as c:
        listed = (await c.get("/api/v1/models")).json()["data"]
        # The built-in models first (kling-image-o1 by its position), then the extra one.
        builtin = list(load_catalog().models)
        assert builtin[0] == "kling-image-o1" and "flux-schnell" in builtin
        ids = [m["id"] for m in listed]
        assert ids[0] == "kling-image-o1" and sorted(ids) == sorted([*builtin, "test-painter"])
        painter = (await c.get("/api/v1/models/test-painter")).json()["data"]
        assert painter["types"] == [
            {
                "type": "paint",
                "price": 3,
                "pricing": {
                    "unit": "request",
                    "per": None,
                    "by": [],
                    "credits": 3,
                    "table": None,
                    "text": "3 credits per request",
                },
                "description": "Paint.",
                "default": True,
            }
        ]
        assert painter["params"]["properties"]["num_images"] == {
            "type": "integer",
            "default": 2,
            "minimum": 1,
            "maximum": 3,
        }

        openapi = (await c.get("/openapi.json")).json()
        body = openapi["paths"]["/api/v1/images/generations"]["post"]["requestBody"]["content"][
            "application/json"
        ]["schema"]
        image_models = [
            m for m in builtin if load_catalog().get(m).endpoint == "images/generations"
        ]
        assert [s["properties"]["model"]["const"] for s in body["oneOf"]] == [
            *image_models,
            "test-painter",
        ]

        key = await keys(credits=10)
        bad = await c.post(
            "/api/v1/images/generations",
            json={"model": "test-painter", "prompt": "x", "num_images": 4},
            headers=key.headers,
        )
        assert (bad.status_code, bad.json()["error"]["param"]) == (400, "num_images")
        unknown = await c.post(
            "/api/v1/images/generations",
            json={"model": "test-painter", "prompt": "x", "images": []},
            headers=key.headers,
        )
        assert (unknown.status_code, unknown.json()["error"]["param"]) == (400, "images")

        created = await c.post(
            "/api/v1/images/generations",
            json={"model": "test-painter", "prompt": "a cat"},
            headers=key.headers,
        )
        task_id = created.json()["data"]["task_id"]
        core = app.state.core
        runner = build_runner(core.db, core.settings, core.catalog, app.state.components)
        await runner.drain()
        task = (await c.get(f"/api/v1/tasks/{task_id}", headers=key.headers)).json()["data"]
        assert task["status"] == "completed" and task["credits"] == 3
        assert [(i["width"], i["height"]) for i in task["output"]["images"]] == [(1184, 880)] * 2
        account = (await c.get("/api/v1/account", headers=key.headers)).json()["data"]["credits"]
        assert account == {"available": 7, "held": 0, "posted": 7}


async def test_models_route_matches_the_declaration(client: httpx2.AsyncClient) -> None:
    model = (await client.get("/api/v1/models/kling-image-o1")).json()["data"]
    assert model["endpoint"] == "/api/v1/images/generations"
    assert {t["type"]: t["price"] for t in model["types"]} == {
        "image-to-image": 6,
        "ai-multi-shot": 16,
    }
    props = model["params"]["properties"]
    assert props["prompt"]["maxLength"] == 2500 and props["images"]["maxItems"] == 10
    assert props["images"]["items"] == {"type": "string", "format": "uri", "maxLength": 2048}
    assert props["resolution"]["enum"] == ["1k", "2k"]
    multi = next(
        c
        for c in model["params"]["allOf"]
        if c["if"]["properties"]["type"]["const"] == "ai-multi-shot"
    )
    assert multi["then"]["properties"]["images"]["minItems"] == 1
    assert multi["then"]["properties"]["num_images"]["maximum"] == 1
    assert model["params"]["additionalProperties"] is False


def test_builtin_dir_holds_one_file_per_model() -> None:
    files = sorted(BUILTIN_DIR.glob("*.toml"))
    assert {"flux-schnell.toml", "kling-image-o1.toml", "kling-v3-omni.toml"} <= {
        p.name for p in files
    }
    assert [load_spec(p).id for p in files] == [p.stem for p in files]


NUM = 'fields.num_images = "num_images"'
RATIO = (
    'fields.aspect_ratio = { from = "aspect_ratio", values = { "1:1" = "sq", '
    '"4:3" = "landscape" } }'
)
RESULTS = 'results = ["outputs[]"]'
ROUTE_MISTAKES = [
    # (a line of the valid route, what replaces it, the key the error names, its reason)
    (NUM, "", "routes[0].tasks.paint", "neither mapped"),
    (NUM, 'fields.num_images = "num_imagez"', "fields.num_images.from", "not a param"),
    (NUM, 'fields.num_images = { from = "num_images", case = "title" }', ".case", "upper"),
    (NUM, 'fields.num_images = { from = "num_images", first = true }', "num_images", "lists"),
    (
        RATIO,
        'fields.aspect_ratio = { from = "aspect_ratio", values = { "1:1" = "sq" } }',
        "fields.aspect_ratio.values",
        "no upstream value for ['4:3']",
    ),
    (RESULTS, "", "routes[0].tasks.paint.results", "where result URLs are"),
    (RESULTS, RESULTS + '\nlookup = "yes"', "routes[0].tasks.paint.lookup", "true or false"),
    (RESULTS, RESULTS + '\ntransports = ["ftp"]', "paint.transports", "some of"),
    (RESULTS, RESULTS + '\nunsupported = ["seed"]', "paint.unsupported", "not params"),
    ('endpoint = "example/painter"', "", "routes[0].tasks.paint.endpoint", "upstream endpoint"),
    ("[routes.tasks.paint]", "[routes.tasks.draw]", "routes[0].tasks.draw", "not a declared"),
]


@pytest.mark.parametrize(("line", "replacement", "key", "reason"), ROUTE_MISTAKES)
def test_route_mistakes_name_the_file_and_key(
    tmp_path: Path, line: str, replacement: str, key: str, reason: str
) -> None:
    path = tmp_path / "painter.toml"
    assert line in SECOND_MODEL
    path.write_text(SECOND_MODEL.replace(line, replacement, 1))
    with pytest.raises(ValueError, match=r"painter\.toml") as caught:
        load_spec(path)
    assert key in str(caught.value) and reason in str(caught.value), caught.value


def test_builtin_routes_carry_every_upstream_detail() -> None:
    model = load_catalog().get("kling-image-o1")
    fal = model.route("fal", "image-to-image")
    kling_multi = model.route("kling", "ai-multi-shot")
    assert fal is not None and kling_multi is not None
    assert fal.endpoint == "fal-ai/kling-image/o1" and fal.requires == ("images",)
    assert fal.fields["prompt"].prompt_refs == "@Image{n}"
    assert fal.fields["resolution"].values == {"1k": "1K", "2k": "2K"}
    assert fal.constants == {"output_format": "png"}
    assert kling_multi.lookup is False and kling_multi.formats == ("jpeg", "png")
    assert model.route("kling", "image-to-image").lookup is True  # type: ignore[union-attr]
    assert model.route("kling", "image-to-image").constants == {"model_name": "kling-image-o1"}  # type: ignore[union-attr]
