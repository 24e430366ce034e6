"""docs/api.md and the OpenAPI schema list the same public routes: a route added to the
app without its documentation (or documented and gone) fails here. Paths and methods
only; what each answers is the docs' and the response models' business."""

import re
from pathlib import Path

from mediagate.app import create_app
from mediagate.core.settings import Settings

DOC = Path(__file__).parent.parent / "docs" / "api.md"
HEADING = re.compile(r"^#{2,4} (GET|POST|PUT|PATCH|DELETE) (/\S+)\s*$", re.MULTILINE)
PUBLIC = ("/api/v1/", "/v1/")


def documented() -> set[tuple[str, str]]:
    return {(method, path) for method, path in HEADING.findall(DOC.read_text())}


def in_schema(settings: Settings) -> set[tuple[str, str]]:
    schema = create_app(settings).openapi()
    return {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        if path.startswith(PUBLIC)
        for method in operations
    }


def test_every_public_route_is_documented_and_every_documented_route_exists(
    settings: Settings,
) -> None:
    schema, doc = in_schema(settings), documented()
    assert schema, "no public routes found in the schema"
    assert schema - doc == set(), "in the OpenAPI schema but not in docs/api.md"
    assert doc - schema == set(), "in docs/api.md but not in the OpenAPI schema"


def test_the_doc_covers_both_doors() -> None:
    paths = {path for _, path in documented()}
    assert any(p.startswith("/api/v1/") for p in paths)
    assert any(p.startswith("/v1/") for p in paths)
