"""Every model file in the catalog meets the same bar: documented sources, a price and a
live route for every type, every param handled by every route, a docs page that shows
every param."""

from pathlib import Path

import httpx2
import pytest

from mediagate.catalog.loader import BUILTIN_DIR, load_spec
from mediagate.catalog.spec import ModelSpec

FILES = sorted(BUILTIN_DIR.glob("*.toml"))
LIVE_PROVIDERS = {"wavespeed", "kling", "fal", "replicate", "openai"}


def spec_of(path: Path) -> ModelSpec:
    return load_spec(path)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_model_file_names_its_sources(path: Path) -> None:
    spec = spec_of(path)
    assert spec.id == path.stem
    assert spec.sources, f"{path.name}: no sources"
    assert all(u.startswith("https://") and "." in u.split("/")[2] for u in spec.sources)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_every_type_has_a_price_and_a_live_route(path: Path) -> None:
    spec = spec_of(path)
    for name, task_type in spec.types.items():
        assert task_type.price.quote_defaults(task_type.params) > 0, (path.name, name)
        live = [p for p in spec.routes_for(name) if p in LIVE_PROVIDERS]
        assert live, f"{path.name}: type {name} has no live route"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_every_route_handles_every_param(path: Path) -> None:
    spec = spec_of(path)
    for route in spec.routes:
        for type_name, task in route.tasks.items():
            handled = (
                {f.source for f in task.fields.values()}
                | set(task.ignored)
                | set(task.unsupported)
                | set(task.requires)
                | set(task.endpoint_params)
            )
            params = spec.types[type_name].params
            missing = [n for n, p in params.items() if not p.gateway and n not in handled]
            assert not missing, (path.name, route.provider, type_name, missing)
            assert task.results, (path.name, route.provider, type_name)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_sandbox_sizes_cover_the_size_param(path: Path) -> None:
    spec = spec_of(path)
    rules = spec.sandbox
    if rules.size_from is None:
        # Sized by aspect ratio (and resolution): the sandbox must be able to read them.
        ratios = spec.params.get("aspect_ratio")
        assert ratios is None or all(":" in v or v == "auto" for v in ratios.enum or ())
        return
    assert set(rules.sizes) == set(spec.params[rules.size_from].enum or ())


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
async def test_docs_page_renders_every_param(client: httpx2.AsyncClient, path: Path) -> None:
    spec = spec_of(path)
    page = await client.get(f"/models/{spec.id}")
    assert page.status_code == 200
    for name in spec.params:
        assert name in page.text, f"/models/{spec.id} does not mention {name}"
    for name in spec.types:
        assert name in page.text, f"/models/{spec.id} does not mention type {name}"


BASE = """
id = "m"
name = "M"
endpoint = "images/generations"
sources = ["https://example.com/doc"]
[types.t]
price = 1
[params.prompt]
type = "string"
[params.size]
type = "string"
enum = ["a", "b"]
default = "a"
[[routes]]
provider = "fal"
[routes.tasks.t]
endpoint = "x"
fields.prompt = "prompt"
fields.size = "size"
results = ["images[].url"]
"""


def model_file(tmp_path: Path, sandbox: str) -> Path:
    path = tmp_path / "m.toml"
    path.write_text(f"{BASE}\n[sandbox]\n{sandbox}\n")
    return path


@pytest.mark.parametrize(
    ("sandbox", "problem"),
    [
        ('size_from = "prompt"', "not an enum param"),
        ('size_from = "size"\nsizes = { a = "10x10" }', "exactly"),
        ('size_from = "size"\nsizes = { a = "1x1", b = "1x1", c = "1x1" }', "exactly"),
        ('size_from = "size"\nsizes = { a = "10x10", b = "wide" }', "not a size"),
        ('sizes = { a = "10x10" }', "needs size_from"),
        ('size_from = "size"\ncount = 2', "unknown keys"),
    ],
)
def test_a_wrong_sandbox_table_stops_the_load(tmp_path: Path, sandbox: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        load_spec(model_file(tmp_path, sandbox))


def test_a_sandbox_table_gives_the_output_size(tmp_path: Path) -> None:
    path = model_file(tmp_path, 'size_from = "size"\nsizes = { a = "640x480", b = "480x640" }')
    rules = load_spec(path).sandbox
    assert rules.output_size({"size": "b"}) == (480, 640)
    assert rules.output_size({"size": "a"}) == (640, 480)


def routed_file(tmp_path: Path, endpoint: str) -> Path:
    path = tmp_path / "m.toml"
    path.write_text(BASE.replace('endpoint = "x"', f'endpoint = "{endpoint}"'))
    return path


def test_an_endpoint_may_carry_an_enum_param(tmp_path: Path) -> None:
    text = routed_file(tmp_path, "acme/model-{size}").read_text()
    path = tmp_path / "m.toml"
    path.write_text(text.replace('fields.size = "size"\n', ""))  # the endpoint handles it
    task = load_spec(path).route("fal", "t")
    assert task is not None and task.endpoint_params == ("size",)
    assert task.endpoint_for({"size": "b"}) == "acme/model-b"


@pytest.mark.parametrize(
    ("endpoint", "problem"),
    [("acme/{nope}", "not a param"), ("acme/{prompt}", "enum or boolean")],
)
def test_an_endpoint_naming_an_open_param_stops_the_load(
    tmp_path: Path, endpoint: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        load_spec(routed_file(tmp_path, endpoint))
