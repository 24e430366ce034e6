"""A real `mediagate serve` process on a loopback port, driven over HTTP like a client."""

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from PIL import Image

from tests.e2e.procs import (
    cli,
    create_key,
    credits,
    environment,
    free_port,
    poll,
    process,
    submit,
    wait_for_http,
    wait_until,
)

pytestmark = pytest.mark.e2e

MP = {"1k": 1024 * 1024, "2k": 2048 * 2048}


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("e2e") / "data"
    port = free_port()
    env = environment(data, module_database_url, sandbox_latency_s=0.3)
    log = data.parent / "serve.log"
    with process(env, "serve", "--port", str(port), log=log) as proc:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(base, proc, log)
        yield {"base": base, "env": env, "log": log}


def test_first_run_prints_a_demo_key_and_curl(server: dict[str, Any]) -> None:
    log = server["log"].read_text()
    assert "aio_test_" in log and "curl -s" in log and "/api/v1/tasks/TASK_ID" in log
    key = next(w for w in log.split() if w.startswith("MEDIAGATE_KEY=aio_test_")).split("=", 1)[1]
    assert credits(server["base"], key)["available"] == 1000


@pytest.mark.parametrize(
    ("aspect_ratio", "resolution", "num_images"),
    [("16:9", "1k", 2), ("9:16", "2k", 1), ("21:9", "1k", 1), ("1:1", "2k", 3), ("3:4", "1k", 1)],
)
def test_generation_completes_with_the_requested_size_and_exact_charge(
    server: dict[str, Any], aspect_ratio: str, resolution: str, num_images: int
) -> None:
    base = server["base"]
    account = f"e2e-{aspect_ratio.replace(':', 'x')}-{resolution}"
    key = create_key(server["env"], account=account, credits=100)
    task_id = submit(
        base,
        key,
        {
            "model": "kling-image-o1",
            "prompt": "A red fox in the snow",
            "aspect_ratio": aspect_ratio,
            "resolution": resolution.upper(),
            "num_images": num_images,
        },
    )
    task = poll(base, key, task_id)
    assert task["status"] == "completed", task
    assert task["credits"] == 6 and task["error"] is None
    images = task["output"]["images"]
    assert len(images) == num_images
    w_ratio, h_ratio = (int(x) for x in aspect_ratio.split(":"))
    for image in images:
        assert image["url"].startswith(base + "/files/")
        downloaded = httpx2.get(image["url"])
        assert downloaded.status_code == 200
        with Image.open(io.BytesIO(downloaded.content)) as png:
            width, height = png.size
            assert png.format == "PNG"
        assert (width, height) == (image["width"], image["height"])
        assert width % 16 == 0 and height % 16 == 0
        assert abs(width / height - w_ratio / h_ratio) / (w_ratio / h_ratio) < 0.02
        assert abs(width * height - MP[resolution]) / MP[resolution] < 0.05
    assert credits(base, key) == {"available": 94, "held": 0, "posted": 94}
    assert "test: available 94, held 0, posted 94" in cli(server["env"], "credits", "show", account)


def test_failing_task_has_a_readable_error_and_releases_the_hold(server: dict[str, Any]) -> None:
    base = server["base"]
    key = create_key(server["env"], account="e2e-fail", credits=6)
    task_id = submit(
        base,
        key,
        {"model": "kling-image-o1", "prompt": "[sandbox:fail] a knight"},
    )
    assert credits(base, key)["held"] == 6
    task = poll(base, key, task_id)
    assert task["status"] == "failed" and task["credits"] == 0
    assert task["error"]["type"] == "generation_failed"
    assert "failed this task on purpose" in task["error"]["message"]
    assert credits(base, key) == {"available": 6, "held": 0, "posted": 6}


def test_keys_cli_lists_and_revokes(server: dict[str, Any]) -> None:
    env, base = server["env"], server["base"]
    key = create_key(env, account="e2e-revoke", credits=10)
    assert credits(base, key)["available"] == 10
    listing = cli(env, "keys", "list", "--account", "e2e-revoke")
    key_id = listing.splitlines()[1].split()[0]
    assert key[:13] in listing and key not in listing  # only a hint is ever shown again
    cli(env, "keys", "revoke", key_id)
    # The server trusts a verified key for MEDIAGATE_KEY_CACHE_S (2 s): refused within that.
    wait_until(
        lambda: (
            httpx2.get(
                f"{base}/api/v1/account", headers={"Authorization": f"Bearer {key}"}
            ).status_code
            == 401
        ),
        timeout=5,
        what="the revoked key to be refused",
    )
    assert "revoked" in cli(env, "keys", "list", "--account", "e2e-revoke")


def test_openapi_documents_the_catalog(server: dict[str, Any]) -> None:
    spec = httpx2.get(f"{server['base']}/openapi.json").json()
    catalog = httpx2.get(f"{server['base']}/api/v1/models").json()["data"]
    schemas = {}
    for route in ("images/generations", "videos/generations"):
        body = spec["paths"][f"/api/v1/{route}"]["post"]["requestBody"]["content"][
            "application/json"
        ]["schema"]
        by_model = {s["properties"]["model"]["const"]: s for s in body.get("oneOf", [body])}
        # one request schema per model of the route
        assert set(by_model) == {m["id"] for m in catalog if m["endpoint"] == f"/api/v1/{route}"}
        schemas.update(by_model)
    assert set(schemas) == {m["id"] for m in catalog}
    assert schemas["kling-image-o1"]["properties"]["num_images"]["maximum"] == 9
    assert schemas["seedance-1-pro"]["properties"]["camera_fixed"]["type"] == "boolean"


def test_data_lives_under_the_data_dir(server: dict[str, Any]) -> None:
    data = Path(server["env"]["MEDIAGATE_DATA_DIR"])
    assert (data / "mediagate.db").exists() != ("MEDIAGATE_DATABASE_URL" in server["env"])
    assert any((data / "files").glob("*.png"))
