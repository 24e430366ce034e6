"""Every BUG and RISK of the providers audit, each driven through the HTTP fakes with the
provider's documented bodies (tests/providers/fixtures). Each failed on the adapters as
they were before routes were declared per model."""

import base64
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from mediagate.catalog.loader import load_catalog
from tests.factories import KeyFactory, generation
from tests.providers.fakes import FakeState, sniff
from tests.providers.test_providers import (
    CHARGED,
    RELEASED,
    live_gateway,
    provider_settings,
    run_task,
)

ADAPTERS = Path(__file__).parents[2] / "mediagate" / "providers"


@pytest.fixture
def webp(images: Any) -> str:
    return str(images.url("/img/640x480.webp"))


@pytest.fixture
def always(fakes: dict[str, FakeState]) -> Iterator[dict[str, FakeState]]:
    """Markers for bodies without a prompt, reset afterwards (the fakes are shared)."""
    yield fakes
    for state in fakes.values():
        state.always = set()
        state.duplicates = "refuse"


# --- fal -------------------------------------------------------------------------------


@pytest.mark.parametrize("marker", ["[fake:completed-error]", "[fake:result-504]"])
async def test_fal_failed_request_is_final_with_fals_reason(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory, ref: str, marker: str
) -> None:
    """F-8: COMPLETED with error/error_type, or a result 5xx carrying x-fal-request-id, is
    fal's final answer: no polling until the deadline."""
    async with live_gateway(make_settings, **provider_settings(fakes, ["fal"])) as app:
        task, kinds = await run_task(
            app, keys, generation(prompt=f"{marker} x", images=[ref]), deadline_s=4
        )
    assert (task["status"], task["error"]["type"]) == ("failed", "generation_failed"), task
    assert re.search("runner_server_error|Request timed out", task["error"]["message"])
    assert kinds == RELEASED


async def test_fal_policy_422_is_classified_by_detail_type(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory, ref: str
) -> None:
    """F-7: fal's real message ("flagged by a content checker") has none of our keywords;
    the `type` says content_policy_violation."""
    async with live_gateway(make_settings, **provider_settings(fakes, ["fal"])) as app:
        task, kinds = await run_task(app, keys, generation(prompt="[fake:policy] a", images=[ref]))
    assert task["error"]["type"] == "content_policy_violation", task["error"]
    assert "flagged by a content checker" in task["error"]["message"]
    assert kinds == RELEASED


async def test_fal_not_retryable_submit_error_is_not_retried(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory, ref: str
) -> None:
    """F-7: `X-Fal-Retryable: false` on a 500 is honoured: one submit, a final failure."""
    state = fakes["fal"]
    submits = state.calls["submit"]
    async with live_gateway(make_settings, **provider_settings(fakes, ["fal"])) as app:
        task, kinds = await run_task(
            app, keys, generation(prompt="[fake:noretry] a", images=[ref]), deadline_s=4
        )
    assert (task["status"], task["error"]["type"]) == ("failed", "generation_failed"), task
    assert state.calls["submit"] - submits == 1 and kinds == RELEASED


async def test_fal_retryable_422_is_retried(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory, ref: str
) -> None:
    """F-7: `X-Fal-Retryable: true` makes even a 422 worth another try."""
    state = fakes["fal"]
    submits = state.calls["submit"]
    async with live_gateway(make_settings, **provider_settings(fakes, ["fal"])) as app:
        task, kinds = await run_task(
            app, keys, generation(prompt="[fake:retry-422] a", images=[ref])
        )
    assert task["status"] == "completed", task["error"]
    assert state.calls["submit"] - submits == 2 and kinds == CHARGED


async def test_fal_o1_gets_no_text_only_request(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory
) -> None:
    """F-6: image_urls is required on fal-ai/kling-image/o1. With fal alone a text-only
    request is refused before any hold, naming the param; with Kling too it goes there."""
    state = fakes["fal"]
    submits = state.calls["submit"]
    async with live_gateway(make_settings, **provider_settings(fakes, ["fal"])) as app:
        key = await keys(mode="live", credits=10, account="text-only")
        async with httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), base_url="http://gw"
        ) as client:
            refused = await client.post(
                "/api/v1/images/generations", json=generation(), headers=key.headers
            )
            balance = (await client.get("/api/v1/account", headers=key.headers)).json()
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["param"] == "images"
    assert balance["data"]["credits"]["held"] == 0
    async with live_gateway(make_settings, **provider_settings(fakes, ["fal", "kling"])) as app:
        task, kinds = await run_task(app, keys, generation(prompt="text only"))
    assert task["status"] == "completed" and kinds == CHARGED
    assert state.calls["submit"] == submits  # fal never asked


async def test_fal_request_is_cancelled_at_the_deadline(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory, ref: str
) -> None:
    """F-12: past the deadline the gateway asks fal to drop the request (PUT .../cancel)."""
    state = fakes["fal"]
    async with live_gateway(make_settings, **provider_settings(fakes, ["fal"])) as app:
        task, _ = await run_task(
            app, keys, generation(prompt="[fake:slow] cancel me", images=[ref]), deadline_s=1.2
        )
    assert task["error"]["type"] == "timeout"
    upstream = next(i for i, t in state.tasks.items() if "cancel me" in t["prompt"])
    assert upstream in state.cancelled


# --- WaveSpeed -------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["cancelled", "timeout", "deleted"])
async def test_wavespeed_sdk_terminal_statuses_are_final(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory, status: str
) -> None:
    """W-6: the official SDKs end on cancelled, timeout and deleted."""
    async with live_gateway(make_settings, **provider_settings(fakes, ["wavespeed"])) as app:
        task, kinds = await run_task(
            app, keys, generation(prompt=f"[fake:{status}] a"), deadline_s=4
        )
    assert (task["status"], task["error"]["type"]) == ("failed", "generation_failed"), task
    assert status in task["error"]["message"] and kinds == RELEASED


@pytest.mark.parametrize(
    ("setting", "status", "delivered"),
    [("fail", "failed", 0), ("drop", "completed", 1), ("deliver", "completed", 2)],
)
async def test_wavespeed_flagged_outputs_follow_the_operator_setting(
    fakes: dict[str, FakeState],
    make_settings: Any,
    keys: KeyFactory,
    setting: str,
    status: str,
    delivered: int,
) -> None:
    """W-13: has_nsfw_contents fails the task as content_policy_violation by default."""
    settings = provider_settings(fakes, ["wavespeed"], provider_flagged_outputs=setting)
    async with live_gateway(make_settings, **settings) as app:
        task, kinds = await run_task(app, keys, generation(prompt="[fake:nsfw] a", num_images=2))
    assert task["status"] == status, task["error"]
    if status == "failed":
        assert task["error"]["type"] == "content_policy_violation" and kinds == RELEASED
    else:
        assert len(task["output"]["images"]) == delivered and kinds == CHARGED


@pytest.mark.parametrize(
    "refusal", [(402, "Insufficient balance"), (400, "insufficient balance, please top up")]
)
async def test_wavespeed_balance_refusal_is_the_operators_and_fails_over(
    fakes: dict[str, FakeState],
    make_settings: Any,
    keys: KeyFactory,
    caplog: pytest.LogCaptureFixture,
    refusal: tuple[int, str],
) -> None:
    """W-12: the body of a balance refusal is not documented; either way it is logged for
    the operator and the task goes to the next provider, never `invalid_request`."""
    fakes["wavespeed"].balance_refusal = refusal
    settings = provider_settings(fakes, ["wavespeed", "kling"])
    async with live_gateway(make_settings, **settings) as app:
        task, kinds = await run_task(app, keys, generation(prompt="[ws-broke] a"))
    assert task["status"] == "completed", task["error"]
    assert kinds == CHARGED
    assert any("PROVIDER CREDENTIALS" in r.getMessage() for r in caplog.records)


# --- Kling -----------------------------------------------------------------------------


@pytest.mark.parametrize("public_base_url", [None, "http://gw"])
async def test_kling_gets_webp_references_converted_from_our_copy(
    fakes: dict[str, FakeState],
    make_settings: Any,
    keys: KeyFactory,
    webp: str,
    public_base_url: str | None,
) -> None:
    """K-14: Kling documents JPG/PNG only; a WebP is sent as a PNG made from our checked
    copy, by our URL with a public base URL, else as bare Base64; never the original."""
    state = fakes["kling"]
    settings = provider_settings(fakes, ["kling"], public_base_url=public_base_url)
    async with live_gateway(make_settings, **settings) as app:
        task, kinds = await run_task(
            app, keys, generation(prompt="webp ref <<<image_1>>>", images=[webp])
        )
        storage = app.state.core.storage if hasattr(app.state.core, "storage") else None
    assert task["status"] == "completed", task["error"]
    assert kinds == CHARGED
    sent = next(b for b in reversed(state.bodies) if "webp ref" in b.get("prompt", ""))
    image = sent["image_list"][0]["image"]
    assert image != webp
    if public_base_url is None:
        assert sniff(base64.b64decode(image)) == "png"
    else:
        assert image.startswith("http://gw/files/") and image.endswith(".png")
    del storage


@pytest.mark.parametrize("shape", ["url", "views"])
async def test_kling_multi_shot_reads_both_documented_result_shapes(
    always: dict[str, FakeState], make_settings: Any, keys: KeyFactory, ref: str, shape: str
) -> None:
    """K-9: images[].url (single query) and images[].url_1..url_3 (list endpoint)."""
    if shape == "views":
        always["kling"].always = {"[fake:views]"}
    async with live_gateway(make_settings, **provider_settings(always, ["kling"])) as app:
        task, kinds = await run_task(
            app, keys, generation(type="ai-multi-shot", images=[ref]), deadline_s=5
        )
    assert task["status"] == "completed", task["error"]
    assert len(task["output"]["images"]) == (3 if shape == "views" else 4)
    assert kinds == CHARGED


@pytest.mark.parametrize("duplicates", ["refuse", "existing"])
async def test_kling_multi_shot_does_not_claim_lookup(
    always: dict[str, FakeState], make_settings: Any, keys: KeyFactory, ref: str, duplicates: str
) -> None:
    """K-7: the multi-shot query takes only task_id, so an unknown submit outcome is not
    looked up (nor resubmitted): the task needs reconciliation and nothing is charged."""
    state = always["kling"]
    state.always, state.duplicates = {"[fake:malformed]"}, duplicates  # type: ignore[assignment]
    created = state.calls["created"]
    async with live_gateway(make_settings, **provider_settings(always, ["kling"])) as app:
        task, kinds = await run_task(app, keys, generation(type="ai-multi-shot", images=[ref]))
    assert task["error"]["type"] == "needs_reconciliation", task["error"]
    assert state.calls["created"] - created == 1 and kinds == RELEASED


@pytest.mark.parametrize("marker", ["[fake:ip]", "[fake:1202]", "[fake:1203]"])
async def test_kling_setup_codes_are_operator_errors(
    fakes: dict[str, FakeState],
    make_settings: Any,
    keys: KeyFactory,
    caplog: pytest.LogCaptureFixture,
    marker: str,
) -> None:
    """K-10: 1304 (IP whitelist) and 1202/1203 point at our setup: not retried, not the
    user's fault, logged for the operator, failed over (here: no other provider)."""
    state = fakes["kling"]
    submits = state.calls["submit"]
    async with live_gateway(make_settings, **provider_settings(fakes, ["kling"])) as app:
        task, kinds = await run_task(app, keys, generation(prompt=f"{marker} a"), deadline_s=4)
    assert task["error"]["type"] == "provider_unavailable", task["error"]
    assert state.calls["submit"] - submits == 1 and kinds == RELEASED
    assert any("PROVIDER CONFIGURATION" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_kling_asynchronous_failure_is_classified(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory, language: str
) -> None:
    """K-12: a `failed` task with task_status_msg in English or Chinese policy wording."""
    async with live_gateway(make_settings, **provider_settings(fakes, ["kling"])) as app:
        task, kinds = await run_task(
            app, keys, generation(prompt=f"[fake:async-policy-{language}] a")
        )
    assert task["error"]["type"] == "content_policy_violation", task["error"]
    assert kinds == RELEASED


# --- every route -----------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["wavespeed", "kling", "fal"])
async def test_auto_aspect_ratio_is_one_behaviour_on_every_route(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory, images: Any, provider: str
) -> None:
    """§4: `auto` is resolved in prepare (nearest declared ratio of the first reference)
    and that ratio is what every provider receives, as the model page says."""
    state = fakes[provider]
    wide = images.url("/img/1200x600.png")  # 2:1 -> 16:9 is the nearest declared ratio
    async with live_gateway(make_settings, **provider_settings(fakes, [provider])) as app:
        task, _ = await run_task(
            app, keys, generation(prompt=f"auto {provider}", images=[wide], aspect_ratio="auto")
        )
    assert task["status"] == "completed", task["error"]
    sent = next(b for b in reversed(state.bodies) if f"auto {provider}" in b.get("prompt", ""))
    assert sent["aspect_ratio"] == "16:9"


@pytest.mark.parametrize(("provider", "field"), [("wavespeed", "images"), ("kling", "image_list")])
async def test_text_only_requests_send_no_empty_reference_list(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory, provider: str, field: str
) -> None:
    """W-9, K-3: the reference list is optional upstream; an empty one is left out."""
    state = fakes[provider]
    async with live_gateway(make_settings, **provider_settings(fakes, [provider])) as app:
        task, _ = await run_task(app, keys, generation(prompt=f"no refs {provider}"))
    assert task["status"] == "completed", task["error"]
    sent = next(b for b in reversed(state.bodies) if b.get("prompt") == f"no refs {provider}")
    assert field not in sent


def test_adapters_hold_no_model_ids_paths_or_model_params() -> None:
    """Everything model-specific is in the declarations: no adapter names a model id, an
    upstream endpoint, a constant or a mapped field of any declared route."""
    catalog = load_catalog()
    needles: set[str] = set()
    for model in catalog.models.values():
        needles.add(model.id)
        for route in model.routes:
            for task in route.tasks.values():
                needles.add(task.endpoint.strip("/"))
                needles.update(task.endpoint.strip("/").split("/"))
                needles.update(task.fields)
                needles.update(task.constants)
                needles.update(v for v in task.constants.values() if isinstance(v, str))
    needles -= {"prompt", "v1", "images", "general"}  # protocol words of every provider
    for adapter in ("fal.py", "wavespeed.py", "kling.py"):
        text = (ADAPTERS / adapter).read_text()
        found = sorted(n for n in needles if re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", text))
        assert not found, f"{adapter} names {found}"
