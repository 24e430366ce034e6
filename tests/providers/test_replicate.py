"""The Replicate adapter against a fake of Replicate's documented predictions API on
loopback, through the runner with flux-schnell's `provider = "replicate"` route."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx2
import pytest
from sqlalchemy import update

from mediagate.app import build_runner
from mediagate.catalog.spec import FieldMap, RouteTask
from mediagate.cli import main
from mediagate.core.clock import utcnow
from mediagate.core.migrate import upgrade
from mediagate.media.fetcher import FetchPolicy, SafeFetcher
from mediagate.providers.base import ProviderRequest
from mediagate.providers.errors import ProviderMisconfigured
from mediagate.providers.http import ProviderHTTP, ResultFetcher
from mediagate.providers.replicate import ReplicateProvider
from mediagate.tasks.models import Task
from tests.factories import KeyFactory
from tests.providers.fake_replicate import ReplicateState, replicate_app
from tests.providers.fakes import serve
from tests.providers.test_providers import CHARGED, RELEASED, live_gateway, run_task
from tests.tasks.test_cancel import assert_cancelled
from tests.tasks.test_cancel import gateway as cancel_gateway

TOKEN = "r8_test_token_0123456789"
MODEL = "black-forest-labs/flux-schnell"


@pytest.fixture(scope="module")
def fake() -> Iterator[ReplicateState]:
    state = ReplicateState(TOKEN)
    with serve(replicate_app(state), state):
        yield state


def settings_for(
    fake: ReplicateState, *, wrong_token: bool = False, **extra: Any
) -> dict[str, Any]:
    port = int(fake.base.rsplit(":", 1)[1])
    return {
        "replicate_api_token": TOKEN + ("-wrong" if wrong_token else ""),
        "replicate_base_url": fake.base,
        "fetch_ports": [80, 443, port],  # the results are served by the fake
        "breaker_threshold": 100,
        **extra,
    }


def flux(prompt: str, **params: Any) -> dict[str, Any]:
    return {"model": "flux-schnell", "prompt": prompt, **params}


def sent(fake: ReplicateState, prompt: str) -> dict[str, Any]:
    """The create body the fake accepted for `prompt`."""
    return next(b for b in reversed(fake.bodies) if b["input"].get("prompt") == prompt)


@pytest.mark.parametrize(("num_images", "aspect_ratio"), [(1, "4:3"), (4, "16:9")])
async def test_a_prediction_is_created_polled_and_its_images_stored(
    fake: ReplicateState, make_settings: Any, keys: KeyFactory, num_images: int, aspect_ratio: str
) -> None:
    prompt = f"a lighthouse {num_images}"
    polls = fake.calls["poll"]
    async with live_gateway(make_settings, **settings_for(fake)) as app:
        task, kinds = await run_task(
            app, keys, flux(prompt, num_images=num_images, aspect_ratio=aspect_ratio)
        )
    assert task["status"] == "completed", task["error"]
    assert len(task["output"]["images"]) == num_images
    assert all(
        i["url"].startswith("http://gw/files/") and (i["width"], i["height"]) == (640, 480)
        for i in task["output"]["images"]
    )
    assert kinds == CHARGED and task["credits"] == num_images
    assert fake.calls["poll"] - polls == 2  # processing, then succeeded
    body = sent(fake, prompt)
    assert body == {
        "model": MODEL,
        "input": {
            "prompt": prompt,
            "num_outputs": num_images,
            "aspect_ratio": aspect_ratio,
            "output_format": "png",
        },
    }
    headers = fake.headers[fake.bodies.index(body)]
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert "prefer" not in headers  # never Prefer: wait; the runner polls


async def test_the_webhook_is_sent_for_the_completed_event_only(
    fake: ReplicateState, make_settings: Any, keys: KeyFactory
) -> None:
    settings = settings_for(fake, public_base_url="http://gw")
    async with live_gateway(make_settings, **settings) as app:
        core = app.state.core
        key = await keys(mode="live", credits=10, account="hooked")
        runner = build_runner(core.db, core.settings, core.catalog, app.state.components)
        async with httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), base_url="http://gw"
        ) as client:
            created = await client.post(
                "/api/v1/images/generations",
                json=flux("[fake:slow] call me back"),
                headers=key.headers,
            )
            task_id = created.json()["data"]["task_id"]
            for _ in range(2):  # prepare, submit
                await runner._claim_and_start()
                while runner._running:
                    await asyncio.wait(runner._running)
            body = sent(fake, "[fake:slow] call me back")
            assert body["webhook_events_filter"] == ["completed"]
            assert body["webhook"].startswith(
                f"http://gw/api/v1/providers/replicate/callback?task={task_id}&sig="
            )
            async with core.db.write() as s:  # the next poll is an hour away
                await s.execute(
                    update(Task)
                    .where(Task.id == task_id)
                    .values(next_run_at=utcnow() + timedelta(hours=1))
                )
            upstream = next(t for t in fake.tasks.values() if t["callback"] == body["webhook"])
            # Replicate finishes (past its processing answer), then POSTs the prediction
            upstream.update(prompt="done now", polls=1)
            called = await client.post(body["webhook"], json={"status": "succeeded"})
            assert called.status_code == 200
            await runner.drain(timeout_s=10)
            task = (await client.get(f"/api/v1/tasks/{task_id}", headers=key.headers)).json()[
                "data"
            ]
    assert task["status"] == "completed", task["error"]


@pytest.mark.parametrize(
    ("marker", "error_type", "words"),
    [
        ("[fake:policy]", "content_policy_violation", "NSFW content"),
        ("[fake:canceled]", "generation_failed", "canceled at Replicate"),
        ("[fake:404]", "generation_failed", "could not be downloaded"),
    ],
)
async def test_a_prediction_that_ends_badly_fails_the_task_with_its_reason(
    fake: ReplicateState,
    make_settings: Any,
    keys: KeyFactory,
    marker: str,
    error_type: str,
    words: str,
) -> None:
    async with live_gateway(make_settings, **settings_for(fake)) as app:
        task, kinds = await run_task(app, keys, flux(f"{marker} ends badly"))
    assert (task["status"], task["error"]["type"]) == ("failed", error_type), task
    assert words in task["error"]["message"]
    assert kinds == RELEASED and task["credits"] == 0


async def test_a_succeeded_prediction_without_files_where_the_route_says_fails_at_once(
    fake: ReplicateState, make_settings: Any, keys: KeyFactory
) -> None:
    """flux-schnell's route reads `output[]`; a model answering one URL string there is a
    route mistake, final at Replicate, so no polling until the deadline."""
    async with live_gateway(make_settings, **settings_for(fake)) as app:
        task, kinds = await run_task(app, keys, flux("[fake:string] one file"))
    assert (task["status"], task["error"]["type"]) == ("failed", "generation_failed"), task
    assert "output[]" in task["error"]["message"] and kinds == RELEASED


async def test_a_route_reading_output_takes_a_single_url(fake: ReplicateState) -> None:
    """Models that return one file answer `output: "<url>"`: their route says `output`."""
    route = RouteTask(
        endpoint=MODEL, fields={"prompt": FieldMap(source="prompt")}, results=("output",)
    )
    async with adapter(fake) as provider:
        request = provider_request(route, "[fake:string] single")
        upstream_id = await provider.submit(request)
        assert (await provider.poll(upstream_id, request)).state == "pending"
        done = await provider.poll(upstream_id, request)
    assert done.state == "completed" and done.outputs == [fake.outputs(upstream_id)[0]]


async def test_a_429_is_retried_after_its_retry_after(
    fake: ReplicateState, make_settings: Any, keys: KeyFactory
) -> None:
    prompt = "[fake:ratelimit] throttled"
    submits, created_before = fake.calls["submit"], fake.calls["created"]
    async with live_gateway(make_settings, **settings_for(fake)) as app:
        core = app.state.core
        key = await keys(mode="live", credits=10, account="throttled")
        runner = build_runner(core.db, core.settings, core.catalog, app.state.components)
        async with httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), base_url="http://gw"
        ) as client:
            created = await client.post(
                "/api/v1/images/generations", json=flux(prompt), headers=key.headers
            )
            task_id = created.json()["data"]["task_id"]
            before = utcnow()
            for _ in range(2):  # prepare, then the throttled submit
                await runner._claim_and_start()
                while runner._running:
                    await asyncio.wait(runner._running)
            async with core.db.read() as s:
                waiting = await s.get_one(Task, task_id)
            assert waiting.step == "submit" and waiting.upstream_id is None
            # Retry-After: 7 (the fake's), not the default 1 s backoff
            assert waiting.next_run_at >= before + timedelta(seconds=fake.retry_after_s)
            async with core.db.write() as s:
                await s.execute(update(Task).where(Task.id == task_id).values(next_run_at=utcnow()))
            await runner.drain(timeout_s=10)
            task = (await client.get(f"/api/v1/tasks/{task_id}", headers=key.headers)).json()[
                "data"
            ]
    assert task["status"] == "completed", task["error"]
    assert fake.calls["submit"] - submits == 2 and fake.calls["created"] - created_before == 1


async def test_a_422_is_final_and_shows_replicates_detail(
    fake: ReplicateState, make_settings: Any, keys: KeyFactory
) -> None:
    submits = fake.calls["submit"]
    async with live_gateway(make_settings, **settings_for(fake)) as app:
        task, kinds = await run_task(app, keys, flux("[fake:422] not permitted"), deadline_s=5)
    assert (task["status"], task["error"]["type"]) == ("failed", "invalid_request"), task
    assert "Invalid version or not permitted" in task["error"]["message"]
    assert "does not exist" in task["error"]["message"]
    assert kinds == RELEASED
    assert fake.calls["submit"] - submits == 1  # not retried


async def test_past_the_deadline_the_prediction_is_canceled_upstream(
    fake: ReplicateState, make_settings: Any, keys: KeyFactory
) -> None:
    async with live_gateway(make_settings, **settings_for(fake)) as app:
        task, kinds = await run_task(app, keys, flux("[fake:slow] forever"), deadline_s=1.2)
    assert task["status"] == "failed" and task["error"]["type"] == "timeout"
    assert kinds == RELEASED
    upstream = next(i for i, t in fake.tasks.items() if t["prompt"] == "[fake:slow] forever")
    assert upstream in fake.cancelled and fake.tasks[upstream]["status"] == "canceled"


@pytest.mark.parametrize(
    ("marker", "error_type"),
    [("[fake:malformed]", "needs_reconciliation"), ("bad token", "provider_unavailable")],
)
async def test_lost_create_answers_and_bad_tokens_are_never_resubmitted(
    fake: ReplicateState, make_settings: Any, keys: KeyFactory, marker: str, error_type: str
) -> None:
    created = fake.calls["created"]
    settings = settings_for(fake, wrong_token=marker == "bad token")
    async with live_gateway(make_settings, **settings) as app:
        task, kinds = await run_task(app, keys, flux(f"{marker} once"))
    assert (task["status"], task["error"]["type"]) == ("failed", error_type), task
    assert kinds == RELEASED
    assert fake.calls["created"] - created == (1 if marker == "[fake:malformed]" else 0)


async def test_server_errors_at_create_are_retried_until_the_deadline(
    fake: ReplicateState, make_settings: Any, keys: KeyFactory
) -> None:
    submits, created = fake.calls["submit"], fake.calls["created"]
    async with live_gateway(make_settings, **settings_for(fake)) as app:
        task, kinds = await run_task(app, keys, flux("[fake:5xx] down"), deadline_s=2.5)
    assert task["status"] == "failed" and task["error"]["type"] == "timeout"
    assert fake.calls["submit"] - submits >= 2 and fake.calls["created"] == created
    assert kinds == RELEASED


@contextlib.asynccontextmanager
async def adapter(fake: ReplicateState) -> AsyncIterator[ReplicateProvider]:
    http = ProviderHTTP(timeout_s=5, connections=2)
    try:
        yield ReplicateProvider(
            http, ResultFetcher(SafeFetcher(FetchPolicy())), api_token=TOKEN, base_url=fake.base
        )
    finally:
        await http.aclose()


def provider_request(route: RouteTask, prompt: str) -> ProviderRequest:
    return ProviderRequest(
        reference="t1", model="x", type="text-to-image", params={"prompt": prompt}, route=route
    )


async def test_an_unknown_model_is_the_operators_problem(fake: ReplicateState) -> None:
    route = RouteTask(endpoint="nobody/no-such-model", fields={"prompt": FieldMap(source="prompt")})
    async with adapter(fake) as provider:
        with pytest.raises(ProviderMisconfigured, match=r"unknown model.*not found"):
            await provider.submit(provider_request(route, "p"))


@pytest.mark.parametrize("wrong_token", [False, True])
def test_providers_check_reads_the_account_and_creates_nothing(
    fake: ReplicateState,
    make_settings: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    wrong_token: bool,
) -> None:
    settings = make_settings(**settings_for(fake, wrong_token=wrong_token))
    created = fake.calls["created"]
    for name, value in {
        "REPLICATE_API_TOKEN": settings.replicate_api_token,
        "REPLICATE_BASE_URL": settings.replicate_base_url,
        "DATA_DIR": settings.data_dir,
        "SECRET_KEY": "test-secret-key",
    }.items():
        monkeypatch.setenv(f"MEDIAGATE_{name}", str(value))
    with pytest.raises(SystemExit) if wrong_token else contextlib.nullcontext():
        main(["providers", "check"])
    out = capsys.readouterr().out
    if wrong_token:
        assert "replicate  FAILED" in out and "You did not pass a valid authentication" in out
    else:
        assert "replicate  ok      credentials accepted; account acme (organization)" in out
    assert fake.calls["created"] == created


def test_the_providers_command_lists_replicate_as_configured(
    fake: ReplicateState,
    make_settings: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings(**settings_for(fake))
    upgrade(settings)
    env = {"DATA_DIR": settings.data_dir, "SECRET_KEY": "test-secret-key"}
    env["REPLICATE_API_TOKEN"] = TOKEN
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
    for name, value in env.items():
        monkeypatch.setenv(f"MEDIAGATE_{name}", str(value))
    main(["providers"])
    out = capsys.readouterr().out
    assert "replicate  configured" in out and "fal        not configured" in out


async def test_a_client_cancel_stops_the_prediction_and_charges_nothing(
    fake: ReplicateState, make_settings: Any
) -> None:
    """Replicate can stop a prediction while it runs; it answers with it `canceled`."""
    async with cancel_gateway(make_settings, mode="live", **settings_for(fake)) as gw:
        task_id = await gw.submit(**flux("[fake:slow] stop me"))
        gw.start_runner()
        task = await gw.until(task_id, lambda t: t.step == "poll" and t.upstream_id is not None)
        assert_cancelled(await gw.cancel(task_id))
        assert task.upstream_id in fake.cancelled
        assert fake.tasks[str(task.upstream_id)]["status"] == "canceled"
        assert await gw.kinds(task_id) == RELEASED
