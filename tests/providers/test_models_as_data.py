"""Two more real models served by existing providers through their data files alone:
kling-v3-omni on Kling's API, flux-schnell on fal."""

from typing import Any

import httpx2
import pytest

from mediagate.app import build_runner
from tests.factories import KeyFactory
from tests.providers.fakes import FakeState
from tests.providers.test_providers import (
    CHARGED,
    live_gateway,
    provider_settings,
    run_task,
)
from tests.web.helpers import sign_up


async def test_kling_v3_omni_is_sent_to_klings_omni_image_with_its_model_name(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory, ref: str
) -> None:
    state = fakes["kling"]
    async with live_gateway(make_settings, **provider_settings(fakes, ["kling"])) as app:
        task, kinds = await run_task(
            app,
            keys,
            {
                "model": "kling-v3-omni",
                "prompt": "v3 <<<image_1>>>",
                "images": [ref],
                "num_images": 2,
            },
        )
    assert task["status"] == "completed", task["error"]
    assert len(task["output"]["images"]) == 2 and kinds == CHARGED and task["credits"] == 8
    sent = next(b for b in reversed(state.bodies) if b.get("prompt") == "v3 <<<image_1>>>")
    assert sent["path"] == "/v1/images/omni-image" and sent["model_name"] == "kling-v3-omni"
    assert sent["n"] == 2 and sent["image_list"] == [{"image": ref}]


async def test_flux_schnell_is_sent_to_fal_with_its_image_size(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory
) -> None:
    state = fakes["fal"]
    async with live_gateway(make_settings, **provider_settings(fakes, ["fal"])) as app:
        task, kinds = await run_task(
            app,
            keys,
            {"model": "flux-schnell", "prompt": "a schnell lighthouse", "aspect_ratio": "16:9"},
        )
    assert task["status"] == "completed", task["error"]
    assert kinds == CHARGED and task["credits"] == 1
    sent = next(b for b in reversed(state.bodies) if b.get("prompt") == "a schnell lighthouse")
    assert sent == {
        "endpoint": "fal-ai/flux/schnell",
        "prompt": "a schnell lighthouse",
        "image_size": "landscape_16_9",
        "num_images": 1,
        "output_format": "png",
        "enable_safety_checker": True,
    }


async def test_flux_schnell_flagged_output_fails_as_policy_by_default(
    fakes: dict[str, FakeState], make_settings: Any, keys: KeyFactory
) -> None:
    async with live_gateway(make_settings, **provider_settings(fakes, ["fal"])) as app:
        task, _ = await run_task(app, keys, {"model": "flux-schnell", "prompt": "[fake:nsfw] a"})
    assert task["error"]["type"] == "content_policy_violation"


@pytest.mark.parametrize("model", ["kling-v3-omni", "flux-schnell"])
async def test_new_models_are_listed_documented_and_run_in_the_sandbox(
    client: httpx2.AsyncClient, keys: KeyFactory, model: str, app: Any
) -> None:
    listed = (await client.get("/api/v1/models")).json()["data"]
    assert model in [m["id"] for m in listed]
    assert model in (await client.get("/models")).text
    page = await client.get(f"/models/{model}")
    assert page.status_code == 200 and model in page.text
    await sign_up(client, f"console-{model}@example.com")
    console = (await client.get("/console")).text
    assert f'<option value="{model}">' in console  # the console offers it, from the catalog
    key = await keys(credits=20)
    created = await client.post(
        "/api/v1/images/generations",
        json={"model": model, "prompt": "sandbox"},
        headers=key.headers,
    )
    assert created.status_code == 200, created.text
    core = app.state.core
    await build_runner(core.db, core.settings, core.catalog, app.state.components).drain()
    task_id = created.json()["data"]["task_id"]
    task = (await client.get(f"/api/v1/tasks/{task_id}", headers=key.headers)).json()["data"]
    assert task["status"] == "completed" and task["output"]["images"], task
