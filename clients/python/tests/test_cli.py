"""`mediagate-client` as a user runs it: a subprocess against the real server."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mgc_servers import Server
from PIL import Image

pytestmark = [pytest.mark.e2e]
SOURCE = Path(__file__).resolve().parents[1] / "src"


def run(server: Server | None, key: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAGATE_")}
    env["PYTHONPATH"] = str(SOURCE)
    if key:
        env["MEDIAGATE_API_KEY"] = key
    if server:
        env["MEDIAGATE_BASE_URL"] = server.base
    return subprocess.run(
        [sys.executable, "-m", "mediagate_client", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_generate_with_a_local_image_wait_and_out(
    server: Server, key: str, fox: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    done = run(
        server,
        key,
        "generate",
        "--model",
        "kling-image-o1",
        "--prompt",
        "<<<image_1>>> in the snow",
        "--image",
        str(fox),
        "--aspect-ratio",
        "16:9",
        "--num-images=2",
        "--wait",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    paths = [Path(line) for line in done.stdout.splitlines()]
    assert len(paths) == 2 and all(p.parent == out for p in paths)
    with Image.open(paths[0]) as image:
        assert image.width > image.height
    assert f"uploading {fox}" in done.stderr
    assert "submitted" in done.stderr and "completed after" in done.stderr


def test_generate_without_wait_prints_the_task_id(server: Server, key: str) -> None:
    done = run(server, key, "generate", "--model", "kling-image-o1", "--prompt", "a fox")
    assert done.returncode == 0, done.stderr
    task_id = done.stdout.strip()
    assert task_id.startswith("task_")

    got = run(server, key, "tasks", "get", task_id, "--wait", "--timeout", "60")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["status"] == "completed"

    listed = run(server, key, "tasks", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line)["task_id"] for line in listed.stdout.splitlines()] == [task_id]
    table = run(server, key, "tasks", "list", "--status", "completed")
    assert table.stdout.splitlines()[0].split() == ["TASK", "STATUS", "MODEL", "CREATED", "CREDITS"]
    assert task_id in table.stdout


def test_the_key_and_url_as_options(server: Server, key: str) -> None:
    done = run(None, None, "--api-key", key, "--base-url", server.base, "tasks", "list")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["generate", "--prompt", "a fox"], "--model"),
        (["generate", "--model", "kling-image-o1", "--image", "./missing.png"], "no such file"),
        (["generate", "--model", "kling-image-o1", "stray"], "unexpected argument"),
        (
            ["generate", "--model", "kling-image-o1", "--prompt", "a fox", "--colour", "red"],
            "colour",
        ),
        (
            ["generate", "--model", "kling-image-o1", "--prompt", "a fox", "--num-images", "99"],
            "num_images",
        ),
        (["tasks", "list", "--limit", "0"], "--limit"),
        (["tasks"], "ACTION"),
    ],
)
def test_usage_errors_exit_2(server: Server, key: str, args: list[str], message: str) -> None:
    done = run(server, key, *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr


def test_no_key_is_a_usage_error(server: Server) -> None:
    done = run(server, None, "tasks", "list")
    assert done.returncode == 2
    assert "MEDIAGATE_API_KEY" in done.stderr


def test_api_errors_exit_3(server: Server, key: str) -> None:
    done = run(server, "aio_test_notarealkey", "tasks", "list")
    assert done.returncode == 3
    assert "401 authentication_error" in done.stderr
    missing = run(server, key, "tasks", "get", "task_nope")
    assert missing.returncode == 3
    assert "404 not_found" in missing.stderr


def test_a_failed_task_exits_1(server: Server, key: str) -> None:
    # An unreachable reference is accepted at submit and fails the task when it is fetched.
    done = run(
        server,
        key,
        "generate",
        "--model",
        "kling-image-o1",
        "--prompt",
        "a fox",
        "--image",
        "https://127.0.0.1:1/fox.png",
        "--wait",
    )
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert json.loads(done.stdout)["status"] == "failed"
    assert "failed after" in done.stderr


def test_timeout_exits_4(server: Server, key: str) -> None:
    done = run(
        server,
        key,
        "generate",
        "--model",
        "kling-image-o1",
        "--prompt",
        "a fox",
        "--wait",
        "--timeout",
        "0",
    )
    assert done.returncode == 4, (done.stdout, done.stderr)
    assert done.stdout.strip().startswith("task_")


def test_cancel(server: Server, key: str) -> None:
    import httpx2

    if (
        "/api/v1/tasks/{task_id}/cancel"
        not in httpx2.get(f"{server.base}/openapi.json").json()["paths"]
    ):
        pytest.skip("this server has no POST /api/v1/tasks/{task_id}/cancel yet")
    task_id = run(
        server, key, "generate", "--model", "kling-image-o1", "--prompt", "x"
    ).stdout.strip()
    done = run(server, key, "tasks", "cancel", task_id)
    assert done.returncode in (0, 3), done.stderr
    if done.returncode == 0:
        assert json.loads(done.stdout)["status"] == "cancelled"


def test_help_lists_the_commands() -> None:
    done = run(None, None, "--help")
    assert done.returncode == 0
    for command in ("generate", "upload", "tasks"):
        assert command in done.stdout
