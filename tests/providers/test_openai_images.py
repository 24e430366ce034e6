"""The OpenAI Images adapter against a fake of OpenAI's documented Images API on loopback,
through the runner with gpt-image-1.5's `provider = "openai"` routes."""

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from sqlalchemy import update

from mediagate.app import build_runner
from mediagate.cli import main
from mediagate.providers.openai_images import _duration
from mediagate.runner.steps import provider_request
from mediagate.tasks.models import Task
from tests.factories import KeyFactory
from tests.providers.fake_openai import FakeOpenAI, openai_app
from tests.providers.fakes import serve
from tests.providers.test_providers import CHARGED, RELEASED, live_gateway, run_task

KEY = "sk-test-openai-0123456789"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    state = FakeOpenAI(KEY)
    with serve(openai_app(state), state):
        yield state


def settings_for(fake: FakeOpenAI, *, wrong_key: bool = False, **extra: Any) -> dict[str, Any]:
    return {
        "openai_api_key": KEY + ("-wrong" if wrong_key else ""),
        "openai_base_url": fake.base,
        "breaker_threshold": 100,
        **extra,
    }


def gpt(prompt: str, **params: Any) -> dict[str, Any]:
    return {"model": "gpt-image-1.5", "prompt": prompt, **params}


def sent(fake: FakeOpenAI, prompt: str) -> dict[str, Any]:
    """The body the fake received for `prompt`."""
    return next(b for b in reversed(fake.bodies) if b.get("prompt") == prompt)


async def test_a_generation_is_answered_at_once_and_its_images_kept(
    fake: FakeOpenAI, make_settings: Any, keys: KeyFactory
) -> None:
    prompt = "a tin robot, landscape"
    before = fake.calls["generations"]
    async with live_gateway(make_settings, **settings_for(fake)) as app:
        task, kinds = await run_task(
            app,
            keys,
            gpt(prompt, num_images=2, size="1536x1024", background="opaque", output_format="webp"),
        )
    assert task["status"] == "completed", task["error"]
    images = task["output"]["images"]
    assert [(i["width"], i["height"]) for i in images] == [(1536, 1024)] * 2
    assert all(i["url"].startswith("http://gw/files/") for i in images)
    assert kinds == CHARGED and task["credits"] == 2 * 5  # medium/1536x1024, per image
    assert fake.calls["generations"] - before == 1  # one synchronous call, no polling
    assert sent(fake, prompt) == {
        "model": "gpt-image-1.5",
        "prompt": prompt,
        "n": 2,
        "size": "1536x1024",
        "quality": "medium",
        "background": "opaque",
        "output_format": "webp",
        "moderation": "auto",
    }
    assert fake.headers[-1]["authorization"] == f"Bearer {KEY}"


async def test_references_go_to_edits_as_image_files(
    fake: FakeOpenAI, make_settings: Any, keys: KeyFactory, images: Any
) -> None:
    refs = [images.url("/img/640x480.png"), images.url("/img/500x500.webp")]
    prompt = "put the robot in the room"
    before = fake.calls["edits"]
    async with live_gateway(make_settings, **settings_for(fake)) as app:
        task, kinds = await run_task(
            app,
            keys,
            gpt(prompt, type="image-to-image", images=refs, input_fidelity="high", quality="low"),
        )
    assert task["status"] == "completed", task["error"]
    assert kinds == CHARGED and task["credits"] == 2  # low/1024x1024 edit
    assert fake.calls["edits"] - before == 1
    edit = fake.edits[-1]
    # Our checked copies, in order, each a file part named as openai-python names arrays.
    assert edit["files"] == [("image[]", "image/png", "png"), ("image[]", "image/webp", "webp")]
    assert edit["fields"] == {
        "model": "gpt-image-1.5",
        "prompt": prompt,
        "n": "1",
        "size": "1024x1024",
        "quality": "low",
        "background": "auto",
        "output_format": "png",
        "input_fidelity": "high",
    }


async def test_edits_refuse_a_moderation_they_cannot_honour(
    fake: FakeOpenAI, make_settings: Any, keys: KeyFactory, images: Any
) -> None:
    async with live_gateway(make_settings, **settings_for(fake)) as app:
        key = await keys(mode="live", credits=100, account="mod")
        async with httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), base_url="http://gw"
        ) as client:
            answer = await client.post(
                "/api/v1/images/generations",
                json=gpt(
                    "x",
                    type="image-to-image",
                    images=[images.url("/img/640x480.png")],
                    moderation="low",
                ),
                headers=key.headers,
            )
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "moderation"


@pytest.mark.parametrize(
    ("marker", "error_type"),
    [
        ("[fake:policy]", "content_policy_violation"),
        ("[fake:quota]", "provider_unavailable"),
        ("[fake:empty]", "generation_failed"),
        ("[fake:garbled]", "needs_reconciliation"),
    ],
)
async def test_refusals_fail_the_task_unpaid_and_are_never_sent_twice(
    fake: FakeOpenAI, make_settings: Any, keys: KeyFactory, marker: str, error_type: str
) -> None:
    prompt = f"{marker} a cat"
    before = fake.calls["generations"]
    async with live_gateway(make_settings, **settings_for(fake)) as app:
        task, kinds = await run_task(app, keys, gpt(prompt))
    assert task["status"] == "failed"
    assert task["error"]["type"] == error_type, task["error"]
    assert kinds == RELEASED
    assert fake.calls["generations"] - before == 1


async def test_the_policy_message_is_openais(
    fake: FakeOpenAI, make_settings: Any, keys: KeyFactory
) -> None:
    async with live_gateway(make_settings, **settings_for(fake)) as app:
        task, _ = await run_task(app, keys, gpt("[fake:policy] again"))
    assert "rejected by the safety system" in task["error"]["message"]


async def test_a_wrong_key_is_an_operator_problem(
    fake: FakeOpenAI, make_settings: Any, keys: KeyFactory
) -> None:
    async with live_gateway(make_settings, **settings_for(fake, wrong_key=True)) as app:
        task, kinds = await run_task(app, keys, gpt("a dog"))
    assert task["status"] == "failed"
    assert task["error"]["type"] == "provider_unavailable"
    assert kinds == RELEASED


async def test_a_rate_limit_is_waited_out(
    fake: FakeOpenAI, make_settings: Any, keys: KeyFactory
) -> None:
    prompt = "[fake:ratelimit] a bird"
    before = fake.calls["generations"]
    async with live_gateway(make_settings, **settings_for(fake)) as app:
        task, kinds = await run_task(app, keys, gpt(prompt))
    assert task["status"] == "completed", task["error"]
    assert kinds == CHARGED
    assert fake.calls["generations"] - before == 2  # the 429, then the answer


async def test_server_errors_are_retried_until_the_deadline(
    fake: FakeOpenAI, make_settings: Any, keys: KeyFactory
) -> None:
    before = fake.calls["generations"]
    async with live_gateway(make_settings, **settings_for(fake)) as app:
        task, kinds = await run_task(app, keys, gpt("[fake:5xx] a fish"), deadline_s=3)
    assert task["status"] == "failed"
    assert task["error"]["type"] == "timeout"
    assert kinds == RELEASED
    assert fake.calls["generations"] - before >= 2  # retried: a 500 is not a paid answer


async def test_a_replay_goes_on_with_an_answer_kept_before_the_crash(
    fake: FakeOpenAI, make_settings: Any, keys: KeyFactory
) -> None:
    """The worker died after the answer was kept, before `upstream_id` was written: the
    replay finds the kept images and completes without calling OpenAI again."""
    prompt = "[fake:slow] kept before the crash"
    async with live_gateway(make_settings, **settings_for(fake)) as app:
        core = app.state.core
        openai = app.state.components.providers.get("openai")
        key = await keys(mode="live", credits=100, account="replay")
        async with httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), base_url="http://gw"
        ) as client:
            created = await client.post(
                "/api/v1/images/generations", json=gpt(prompt, num_images=3), headers=key.headers
            )
            task_id = created.json()["data"]["task_id"]
            async with core.db.read() as s:
                row = await s.get_one(Task, task_id)
            route = core.catalog.get("gpt-image-1.5").route("openai", "text-to-image")
            upstream_id = await openai.submit(provider_request(row, route=route))  # the call
            async with core.db.write() as s:  # as the dead worker left it
                await s.execute(
                    update(Task)
                    .where(Task.id == task_id)
                    .values(step="submitting", provider="openai", prepared={"references": []})
                )
            calls = fake.calls["generations"]
            await build_runner(core.db, core.settings, core.catalog, app.state.components).drain(
                timeout_s=30
            )
            task = (await client.get(f"/api/v1/tasks/{task_id}", headers=key.headers)).json()[
                "data"
            ]
    assert upstream_id == "staged:png,png,png"
    assert task["status"] == "completed", task["error"]
    assert len(task["output"]["images"]) == 3
    assert fake.calls["generations"] == calls  # not asked again


async def test_sandbox_renders_the_requested_size(make_settings: Any, keys: KeyFactory) -> None:
    async with live_gateway(make_settings) as app:
        key = await keys(mode="test", credits=100, account="sandboxed")
        async with httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), base_url="http://gw"
        ) as client:
            created = await client.post(
                "/api/v1/images/generations",
                json=gpt("a sandbox robot", size="1024x1536"),
                headers=key.headers,
            )
            task_id = created.json()["data"]["task_id"]
            core = app.state.core
            await build_runner(core.db, core.settings, core.catalog, app.state.components).drain(
                timeout_s=30
            )
            task = (await client.get(f"/api/v1/tasks/{task_id}", headers=key.headers)).json()[
                "data"
            ]
    assert task["status"] == "completed", task["error"]
    assert [(i["width"], i["height"]) for i in task["output"]["images"]] == [(1024, 1536)]


@pytest.mark.parametrize("wrong_key", [False, True])
def test_providers_check_lists_models_and_creates_nothing(
    fake: FakeOpenAI,
    make_settings: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    wrong_key: bool,
) -> None:
    settings = make_settings(**settings_for(fake, wrong_key=wrong_key))
    calls = fake.calls["generations"] + fake.calls["edits"]
    for name, value in {
        "OPENAI_API_KEY": settings.openai_api_key,
        "OPENAI_BASE_URL": settings.openai_base_url,
        "DATA_DIR": settings.data_dir,
        "SECRET_KEY": "test-secret-key",
    }.items():
        monkeypatch.setenv(f"MEDIAGATE_{name}", str(value))
    with pytest.raises(SystemExit) if wrong_key else contextlib.nullcontext():
        main(["providers", "check"])
    out = " ".join(capsys.readouterr().out.split())
    if wrong_key:
        assert "openai FAILED" in out and "Incorrect API key provided" in out
    else:
        assert "openai ok credentials accepted; 2 models visible" in out
    assert fake.calls["generations"] + fake.calls["edits"] == calls


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("soon", None)],
)
def test_rate_limit_reset_durations(text: str, seconds: float | None) -> None:
    assert _duration(text) == seconds
