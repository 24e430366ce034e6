"""Each adapter against a fake of its provider's documented API, served on loopback:
the task ends in the right state, with the right error type and credit outcome."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx2
import jwt
import pytest
from sqlalchemy import select, update

from mediagate.app import build_runner, create_app
from mediagate.cli import main
from mediagate.core.clock import utcnow
from mediagate.core.migrate import upgrade
from mediagate.ledger.models import LedgerTransfer
from mediagate.tasks.models import Task
from tests.factories import KeyFactory, generation
from tests.providers.fakes import FakeState, fal_app, kling_app, serve, wavespeed_app

KLING_SECRET = "kling-secret-key-0123456789abcdefghij"
IMAGE_PORTS: list[int] = []


@pytest.fixture(scope="module")
def fakes(images: Any) -> Iterator[dict[str, FakeState]]:
    states = {
        "wavespeed": FakeState("ws-key"),
        "kling": FakeState("kling-access"),
        "fal": FakeState("fal-key"),
    }
    with (
        serve(wavespeed_app(states["wavespeed"]), states["wavespeed"]),
        serve(kling_app(states["kling"], KLING_SECRET), states["kling"]),
        serve(fal_app(states["fal"]), states["fal"]),
    ):
        IMAGE_PORTS[:] = [images.server_address[1]]  # references come from there
        yield states


def provider_settings(
    fakes: dict[str, FakeState], only: list[str], wrong_key: bool = False, **extra: Any
) -> dict[str, Any]:
    bad = "-wrong" if wrong_key else ""
    values: dict[str, Any] = {}
    if "wavespeed" in only:
        values.update(
            wavespeed_api_key=fakes["wavespeed"].key + bad,
            wavespeed_base_url=fakes["wavespeed"].base,
        )
    if "kling" in only:
        values.update(
            kling_access_key=fakes["kling"].key + bad,
            kling_secret_key=KLING_SECRET,
            kling_base_url=fakes["kling"].base,
        )
    if "fal" in only:
        values.update(
            fal_key=fakes["fal"].key + bad,
            fal_base_url=fakes["fal"].base,
            fal_platform_url=fakes["fal"].base + "/v1",
        )
    ports = [int(f.base.rsplit(":", 1)[1]) for f in fakes.values()]
    return {
        **values,
        "fetch_ports": [80, 443, *ports, *IMAGE_PORTS],
        "breaker_threshold": 100,
        **extra,
    }


@pytest.fixture
def ref(images: Any) -> str:
    """One reference image (fal's o1 route needs at least one)."""
    return str(images.url("/img/640x480.png"))


@asynccontextmanager
async def live_gateway(make_settings: Callable[..., Any], **overrides: Any) -> AsyncIterator[Any]:
    settings = make_settings(**overrides)
    await asyncio.to_thread(upgrade, settings)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


async def run_task(
    app: Any,
    keys: KeyFactory,
    body: dict[str, Any],
    *,
    deadline_s: float | None = None,
    route: str = "/api/v1/images/generations",
) -> tuple[dict[str, Any], list[str]]:
    core = app.state.core
    key = await keys(mode="live", credits=100, account="live-acme")
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://gw"
    ) as client:
        created = await client.post(route, json=body, headers=key.headers)
        assert created.status_code == 200, created.text
        task_id = created.json()["data"]["task_id"]
        if deadline_s is not None:
            async with core.db.write() as s:
                await s.execute(
                    update(Task)
                    .where(Task.id == task_id)
                    .values(deadline_at=utcnow() + timedelta(seconds=deadline_s))
                )
        await build_runner(core.db, core.settings, core.catalog, app.state.components).drain(
            timeout_s=30
        )
        task = (await client.get(f"/api/v1/tasks/{task_id}", headers=key.headers)).json()["data"]
    async with core.db.read() as s:
        kinds = list(
            await s.scalars(
                select(LedgerTransfer.kind)
                .where(LedgerTransfer.task_id == task_id)
                .order_by(LedgerTransfer.id)
            )
        )
    return task, kinds


PROVIDERS = ["wavespeed", "kling", "fal"]
CHARGED, RELEASED = ["hold", "capture"], ["hold", "release"]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("num_images", [1, 9])
async def test_success(
    fakes: dict[str, FakeState],
    make_settings: Any,
    keys: KeyFactory,
    provider: str,
    num_images: int,
    ref: str,
) -> None:
    async with live_gateway(make_settings, **provider_settings(fakes, [provider])) as app:
        task, kinds = await run_task(
            app,
            keys,
            generation(
                prompt="a fox <<<image_1>>>",
                images=[ref],
                num_images=num_images,
                aspect_ratio="16:9",
            ),
        )
    assert task["status"] == "completed", task["error"]
    assert len(task["output"]["images"]) == num_images
    assert all(
        i["url"].startswith("http://gw/files/") and (i["width"], i["height"]) == (640, 480)
        for i in task["output"]["images"]
    )
    assert kinds == CHARGED and task["credits"] == 6


SCENARIOS = [
    # (marker, status, error type, ledger) — per provider where they differ
    ("[fake:policy]", {p: ("failed", "content_policy_violation", RELEASED) for p in PROVIDERS}),
    ("[fake:ratelimit]", {p: ("completed", None, CHARGED) for p in PROVIDERS}),
    ("[fake:404]", {p: ("failed", "generation_failed", RELEASED) for p in PROVIDERS}),
    ("[fake:forbidden]", {p: ("failed", "provider_unavailable", RELEASED) for p in PROVIDERS}),
    (
        "[fake:malformed]",
        {
            "wavespeed": ("failed", "needs_reconciliation", RELEASED),
            "fal": ("failed", "needs_reconciliation", RELEASED),
            "kling": ("completed", None, CHARGED),  # found again by external_task_id
        },
    ),
]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(("marker", "expected"), SCENARIOS, ids=[s[0] for s in SCENARIOS])
async def test_scenarios(
    fakes: dict[str, FakeState],
    make_settings: Any,
    keys: KeyFactory,
    provider: str,
    marker: str,
    expected: dict[str, Any],
    ref: str,
) -> None:
    state = fakes[provider]
    created_before, submits_before = state.calls["created"], state.calls["submit"]
    async with live_gateway(make_settings, **provider_settings(fakes, [provider])) as app:
        task, kinds = await run_task(
            app, keys, generation(prompt=f"{marker} {provider} {len(state.tasks)}", images=[ref])
        )
    status, error_type, ledger = expected[provider]
    assert task["status"] == status, task
    assert (task["error"] or {}).get("type") == error_type
    assert kinds == ledger
    assert state.calls["created"] - created_before <= 1  # never two upstream tasks
    if marker == "[fake:ratelimit]":
        assert state.calls["submit"] - submits_before == 2
    if error_type == "content_policy_violation":  # the provider's own words reach the user
        words = ("polic", "safety", "flagged")
        assert any(w in task["error"]["message"] for w in words), task["error"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_auth_failure_is_provider_unavailable(
    fakes: dict[str, FakeState],
    make_settings: Any,
    keys: KeyFactory,
    provider: str,
    caplog: pytest.LogCaptureFixture,
    ref: str,
) -> None:
    async with live_gateway(
        make_settings, **provider_settings(fakes, [provider], wrong_key=True)
    ) as app:
        task, kinds = await run_task(app, keys, generation(images=[ref]))
    assert task["status"] == "failed" and task["error"]["type"] == "provider_unavailable"
    assert kinds == RELEASED
    assert any(
        "PROVIDER CREDENTIALS" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records
    )


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_slow_answer_past_the_deadline(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory, provider: str, ref: str
) -> None:
    async with live_gateway(make_settings, **provider_settings(fakes, [provider])) as app:
        task, kinds = await run_task(
            app, keys, generation(prompt="[fake:slow] forever", images=[ref]), deadline_s=1.2
        )
    assert task["status"] == "failed" and task["error"]["type"] == "timeout"
    assert kinds == RELEASED


@pytest.mark.parametrize("provider", ["wavespeed", "kling"])
async def test_multi_shot(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory, provider: str, images: Any
) -> None:
    settings = provider_settings(fakes, [provider])
    async with live_gateway(make_settings, **settings) as app:
        task, kinds = await run_task(
            app, keys, generation(type="ai-multi-shot", images=[images.url("/img/600x800.png")])
        )
    assert task["status"] == "completed", task["error"]
    assert len(task["output"]["images"]) == 4
    assert kinds == CHARGED and task["credits"] == 16


async def test_kling_receives_a_valid_token_and_it_is_reused(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory
) -> None:
    state = fakes["kling"]
    seen = len(state.tokens)
    async with live_gateway(make_settings, **provider_settings(fakes, ["kling"])) as app:
        task, _ = await run_task(app, keys, generation(prompt="token check"))
    assert task["status"] == "completed"
    tokens = state.tokens[seen:]
    assert len(tokens) >= 2 and len(set(tokens)) == 1  # submit and poll share one token
    claims = jwt.decode(tokens[0], KLING_SECRET, algorithms=["HS256"])
    assert claims["iss"] == state.key and claims["exp"] - claims["nbf"] == 1805


async def test_failover_before_submit(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory
) -> None:
    """WaveSpeed fails at submit (5xx) and Kling is healthy: the task completes via Kling."""
    ws, kling = fakes["wavespeed"], fakes["kling"]
    ws_submits, kling_created = ws.calls["submit"], kling.calls["created"]
    async with live_gateway(
        make_settings, **provider_settings(fakes, ["wavespeed", "kling"])
    ) as app:
        task, kinds = await run_task(app, keys, generation(prompt="[ws-down] failover"))
    assert task["status"] == "completed", task["error"]
    assert kinds == CHARGED
    assert ws.calls["submit"] - ws_submits == 1
    assert kling.calls["created"] - kling_created == 1


async def test_an_open_breaker_keeps_the_provider_out(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory
) -> None:
    ws, kling = fakes["wavespeed"], fakes["kling"]
    settings = {
        **provider_settings(fakes, ["wavespeed", "kling"]),
        "breaker_threshold": 1,
        "breaker_cooldown_s": 600,
    }
    async with live_gateway(make_settings, **settings) as app:
        first, _ = await run_task(app, keys, generation(prompt="[ws-down] opens the breaker"))
        assert app.state.providers.breaker("wavespeed").state == "open"
        ws_submits, kling_created = ws.calls["submit"], kling.calls["created"]
        second, kinds = await run_task(app, keys, generation(prompt="healthy prompt, breaker open"))
    assert first["status"] == second["status"] == "completed"
    assert ws.calls["submit"] == ws_submits  # not called at all
    assert kling.calls["created"] - kling_created == 1 and kinds == CHARGED


@pytest.mark.parametrize("provider", ["kling", "wavespeed"])
async def test_an_upstream_callback_makes_the_poll_due_now(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory, provider: str
) -> None:
    state = fakes[provider]
    settings = {**provider_settings(fakes, [provider]), "public_base_url": "http://gw"}
    settings_safety_s = 10.0  # MEDIAGATE_CALLBACK_SAFETY_POLL_S default
    async with live_gateway(make_settings, **settings) as app:
        core = app.state.core
        key = await keys(mode="live", credits=10, account="cb")
        runner = build_runner(core.db, core.settings, core.catalog, app.state.components)
        async with httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), base_url="http://gw"
        ) as client:
            task_id = (
                await client.post(
                    "/api/v1/images/generations",
                    json=generation(prompt="[fake:slow] call me"),
                    headers=key.headers,
                )
            ).json()["data"]["task_id"]
            for _ in range(3):  # prepare, submit: now waiting on the provider
                await runner._claim_and_start()
                while runner._running:
                    await asyncio.wait(runner._running)  # yields, so done callbacks run
            async with core.db.read() as s:  # a provider that calls back is polled rarely
                waiting = await s.get_one(Task, task_id)
            assert waiting.step == "poll"
            assert waiting.next_run_at > utcnow() + timedelta(seconds=settings_safety_s - 1)
            async with core.db.write() as s:  # the next poll is an hour away
                await s.execute(
                    update(Task)
                    .where(Task.id == task_id)
                    .values(next_run_at=utcnow() + timedelta(hours=1))
                )
            upstream = next(
                t for t in state.tasks.values() if "call me" in t["prompt"] and t["callback"]
            )
            assert upstream["callback"].startswith(
                f"http://gw/api/v1/providers/{provider}/callback?task={task_id}&sig="
            )
            upstream["prompt"] = "done now"  # the provider finishes, then calls back

            forged = await client.post(
                f"/api/v1/providers/{provider}/callback?task={task_id}&sig=0000"
            )
            assert forged.status_code == 404
            called = await client.post(
                upstream["callback"], json={"anything": "the provider sends"}
            )
            assert called.status_code == 200
            await runner.drain(timeout_s=10)
            task = (await client.get(f"/api/v1/tasks/{task_id}", headers=key.headers)).json()[
                "data"
            ]
    assert task["status"] == "completed"


async def test_wavespeed_concurrency_limit_sends_the_overflow_elsewhere(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory
) -> None:
    ws, kling = fakes["wavespeed"], fakes["kling"]
    settings = {**provider_settings(fakes, ["wavespeed", "kling"]), "wavespeed_max_concurrency": 1}
    async with live_gateway(make_settings, **settings) as app:
        core = app.state.core
        key = await keys(mode="live", credits=30, account="busy")
        runner = build_runner(core.db, core.settings, core.catalog, app.state.components)
        async with httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), base_url="http://gw"
        ) as client:
            ids = [
                (
                    await client.post(
                        "/api/v1/images/generations",
                        json=generation(prompt=f"[fake:slow] busy {i}"),
                        headers=key.headers,
                    )
                ).json()["data"]["task_id"]
                for i in range(2)
            ]
            for _ in range(3):
                await runner._claim_and_start()
                while runner._running:
                    await asyncio.wait(runner._running)  # yields, so done callbacks run
        async with core.db.read() as s:
            placed = {
                t.id: (t.provider, t.step)
                for t in await s.scalars(select(Task).where(Task.id.in_(ids)))
            }
    assert sorted(p for p, _ in placed.values()) == ["kling", "wavespeed"]
    assert all(step == "poll" for _, step in placed.values())
    assert ws.calls["created"] >= 1 and kling.calls["created"] >= 1


def test_providers_command_shows_configuration_breakers_and_failures(
    fakes: dict[str, FakeState],
    make_settings: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings(**provider_settings(fakes, ["wavespeed"], wrong_key=True))
    upgrade(settings)

    async def one_failed_task() -> None:
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            await run_task(
                app, KeyFactory(app.state.core.db, settings), generation(prompt="bad key")
            )
            core = app.state.core
            runner = build_runner(core.db, settings, core.catalog, app.state.components)
            runner.ctx.providers.breaker("wavespeed").record_failure()
            await runner.reconcile()  # writes this runner's breaker snapshot

    asyncio.run(one_failed_task())
    env = {"DATA_DIR": settings.data_dir, "SECRET_KEY": "test-secret-key", "WAVESPEED_API_KEY": "x"}
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
    for name, value in env.items():
        monkeypatch.setenv(f"MEDIAGATE_{name}", str(value))
    main(["providers"])
    out = capsys.readouterr().out
    assert "wavespeed  configured" in out and "kling      not configured" in out
    assert "failed:provider_unavailable 1" in out
    assert "closed (" in out or "open (" in out


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_server_errors_at_submit_are_retried_until_the_deadline(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory, provider: str, ref: str
) -> None:
    state = fakes[provider]
    submits, created = state.calls["submit"], state.calls["created"]
    async with live_gateway(make_settings, **provider_settings(fakes, [provider])) as app:
        task, kinds = await run_task(
            app, keys, generation(prompt="[fake:5xx] down", images=[ref]), deadline_s=2.5
        )
    assert task["status"] == "failed" and task["error"]["type"] == "timeout"
    assert kinds == RELEASED
    assert state.calls["submit"] - submits >= 2  # retried with backoff
    assert state.calls["created"] == created  # and never created anything


@pytest.mark.parametrize("wrong_key", [False, True])
def test_providers_check_calls_each_account_endpoint_and_creates_nothing(
    fakes: dict[str, FakeState],
    make_settings: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    wrong_key: bool,
) -> None:
    settings = make_settings(**provider_settings(fakes, PROVIDERS, wrong_key=wrong_key))
    created = {n: f.calls["created"] for n, f in fakes.items()}
    names = {
        "WAVESPEED_API_KEY": settings.wavespeed_api_key,
        "WAVESPEED_BASE_URL": settings.wavespeed_base_url,
        "KLING_ACCESS_KEY": settings.kling_access_key,
        "KLING_SECRET_KEY": settings.kling_secret_key,
        "KLING_BASE_URL": settings.kling_base_url,
        "FAL_KEY": settings.fal_key,
        "FAL_BASE_URL": settings.fal_base_url,
        "FAL_PLATFORM_URL": settings.fal_platform_url,
        "DATA_DIR": settings.data_dir,
        "SECRET_KEY": "test-secret-key",
    }
    for name, value in names.items():
        monkeypatch.setenv(f"MEDIAGATE_{name}", str(value))
    with pytest.raises(SystemExit) if wrong_key else contextlib.nullcontext():
        main(["providers", "check"])
    out = capsys.readouterr().out
    if wrong_key:
        assert all(f"{n:<10} FAILED" in out for n in PROVIDERS), out
    else:
        assert "wavespeed  ok      credentials accepted; balance 156.78 USD" in out, out
        assert "kling      ok      credentials accepted; 1 resource pack(s)" in out, out
        assert "fal        ok      credentials accepted; account my-team" in out, out
    assert {n: f.calls["created"] for n, f in fakes.items()} == created
