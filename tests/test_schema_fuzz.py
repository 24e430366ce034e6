"""The OpenAPI schema, fuzzed: schemathesis generates requests for every documented route
(valid and invalid ones) and sends them, with a test key, to the real ASGI app. No answer
may be a 5xx, and every answer must be one the schema documents (status code, content
type, headers, body) — a schema that documents `{}` proves nothing."""

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mediagate.app import create_app
from mediagate.core.db import Database
from mediagate.core.migrate import upgrade
from mediagate.core.settings import Settings
from tests.factories import KeyFactory

# Per route and mode (valid, invalid requests): bounded so the module runs in well under a
# minute on a busy 2-core machine.
EXAMPLES_PER_ROUTE = 50
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def make_key(settings: Settings) -> str:
    async def go() -> str:
        db = Database(settings.db_url)
        try:
            # Enough test credits that no generated submit runs out (402 is documented too).
            return (await KeyFactory(db, settings)(account="fuzz", credits=10**9)).raw
        finally:
            await db.dispose()

    return asyncio.run(go())


@pytest.fixture(scope="module")
def fuzzed(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[tuple[schemathesis.BaseSchema, str]]:
    data: Path = tmp_path_factory.mktemp("fuzz")
    app_settings = Settings(
        database_url=module_database_url,
        data_dir=data,
        secret_key="test-secret-key",
        embedded_runner=False,  # submits stay in progress: the fuzz test is about the API
        rate_limit_per_s=0,
        max_in_flight_per_account=10**6,
    )
    upgrade(app_settings)
    key = make_key(app_settings)
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(app_settings))
    yield schema, key
    shutdown_lifespans()  # the app's lifespan, started once by schemathesis' ASGI client


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_answer_is_documented_and_none_is_a_5xx(
    fuzzed: tuple[schemathesis.BaseSchema, str], mode: GenerationMode
) -> None:
    schema, key = fuzzed
    headers = {"Authorization": f"Bearer {key}"}
    # schemathesis' own pytest parametrization (`from_fixture`) does not run on pytest 9;
    # each operation gets its own bounded Hypothesis run instead.
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 7, [o.label for o in operations]
    for operation in operations:

        @given(case=operation.as_strategy(mode))
        @settings(
            max_examples=EXAMPLES_PER_ROUTE,
            deadline=None,
            derandomize=True,  # the same requests on every run: a failure is reproducible
            database=None,
            suppress_health_check=list(HealthCheck),
            print_blob=True,
        )
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            fuzz()
        except Unsatisfiable:
            # A route without parameters or body has no invalid request to make.
            assert mode is GenerationMode.NEGATIVE, operation.label
        except Exception as exc:
            exc.add_note(f"while fuzzing {operation.label} ({mode.value})")
            raise
