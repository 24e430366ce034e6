"""The synchronous client against a real `mediagate serve` (sandbox tasks complete)."""

import json
import logging
from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest
from mediagate_client import (
    AuthenticationError,
    Client,
    InsufficientCreditsError,
    InvalidRequestError,
    NotFoundError,
    RetryPolicy,
    WaitTimeout,
)
from mgc_servers import Server, faulty_proxy
from PIL import Image

pytestmark = [pytest.mark.e2e]
MODEL = "kling-image-o1"


@pytest.fixture
def client(server: Server, key: str) -> Client:
    with Client(key, base_url=server.base) as sdk:
        yield sdk


def test_generate_wait_download(client: Client, tmp_path: Path) -> None:
    task = client.generate(MODEL, prompt="a red fox in the snow", aspect_ratio="16:9", num_images=2)
    assert task.id.startswith("task_")
    assert task.status == "IN_PROGRESS"
    assert task.wait(timeout=60) is task
    assert task.status == "completed", task.data
    assert task.credits == 6
    assert task.completed_at is not None and task.created_at is not None
    assert len(task.outputs) == 2
    paths = task.download(tmp_path / "results")
    assert [p.name for p in paths] == [f"{task.id}-1.png", f"{task.id}-2.png"]
    for path, output in zip(paths, task.outputs, strict=True):
        with Image.open(path) as image:
            assert image.size == (output.width, output.height)
            assert image.width > image.height  # 16:9
    assert not list((tmp_path / "results").glob("*.part"))


def test_wait_holds_the_request_on_the_server(server: Server, key: str) -> None:
    with faulty_proxy(server.base) as proxy, Client(key, base_url=proxy.base) as client:
        task = client.generate(MODEL, prompt="a fox, waited on").wait(timeout=60)
        reads = [h for m, p, h in proxy.faults.seen if m == "GET" and "/tasks/" in p]
    assert task.completed
    assert reads, "wait() never asked for the task"
    assert all(h.get("prefer", "").startswith("wait=") for h in reads)
    # The server held the answer until the task ended: no polling loop.
    assert len(reads) == 1


def test_wait_falls_back_to_polling(server: Server, key: str) -> None:
    """A server (or proxy) that ignores `Prefer: wait` is polled, with backoff, to the end."""
    with faulty_proxy(server.base) as proxy, Client(key, base_url=proxy.base) as client:
        proxy.faults.strip_prefer = True
        task = client.generate(MODEL, prompt="a fox, polled").wait(timeout=60)
        reads = [p for m, p, _ in proxy.faults.seen if m == "GET" and "/tasks/" in p]
    assert task.completed
    assert len(reads) >= 2  # answered at once while in progress, so asked again


def test_wait_timeout_carries_the_task(client: Client) -> None:
    task = client.generate(MODEL, prompt="a fox, not waited for long")
    with pytest.raises(WaitTimeout) as caught:
        task.wait(timeout=0)
    assert caught.value.task is task
    assert task.wait(timeout=60).completed


def test_a_lost_submit_answer_is_retried_into_the_same_task(server: Server, key: str) -> None:
    """The first submit reaches the server (a task is made) but its answer is lost: the
    retry carries the same Idempotency-Key, so the server answers with that same task."""
    with (
        faulty_proxy(server.base) as proxy,
        Client(key, base_url=proxy.base, retry=RetryPolicy(backoff_s=0.05)) as client,
    ):
        proxy.faults.lose_submits = 1
        task = client.generate(MODEL, prompt="a fox, submitted once")
        submits = [h for m, p, h in proxy.faults.seen if m == "POST"]
        listed = list(client.list_tasks())
        balance = client.account()["credits"]
    assert len(submits) == 2
    assert submits[0]["idempotency-key"] == submits[1]["idempotency-key"]
    assert [t.id for t in listed] == [task.id]
    assert balance["available"] == 100 - 6, balance  # one hold


def test_each_generate_call_has_its_own_idempotency_key(server: Server, key: str) -> None:
    with faulty_proxy(server.base) as proxy, Client(key, base_url=proxy.base) as client:
        first = client.generate(MODEL, prompt="a fox")
        second = client.generate(MODEL, prompt="a fox")
        keys = [h["idempotency-key"] for m, _, h in proxy.faults.seen if m == "POST"]
    assert first.id != second.id
    assert len(set(keys)) == 2


def test_rate_limits_are_retried_after_retry_after(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A server of its own with a tight per-key rate: the client waits out each 429 as
    its Retry-After says and every request succeeds."""
    from tests.e2e.procs import cli, create_key, environment, free_port, process, wait_for_http

    env = environment(tmp_path / "data", rate_limit_per_s=1, rate_limit_burst=2)
    cli(env, "migrate")
    key = create_key(env, account="limited", credits=10)
    port = free_port()
    with process(env, "serve", "--port", str(port), log=tmp_path / "serve.log") as proc:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(base, proc, tmp_path / "serve.log")
        caplog.set_level(logging.INFO, logger="mediagate_client")
        with Client(key, base_url=base, retry=RetryPolicy(max_retries=5)) as client:
            accounts = [client.account() for _ in range(4)]
    assert all(a["credits"]["available"] == 10 for a in accounts)
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert retries, "no 429 was met: the rate limit did not apply"
    assert all("429" in r.getMessage() for r in retries)


def test_errors_are_typed(server: Server, client: Client, new_key: Callable[..., str]) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        client.generate(MODEL, prompt="a fox", num_images=99)
    assert caught.value.status == 400
    assert caught.value.type == "invalid_request_error"
    assert caught.value.param == "num_images"
    assert caught.value.request_id

    with pytest.raises(NotFoundError) as missing:
        client.get_task("task_doesnotexist")
    assert missing.value.status == 404 and missing.value.type == "not_found"

    with pytest.raises(NotFoundError):
        client.generate("no-such-model", prompt="a fox")

    poor = Client(new_key(credits=0), base_url=server.base)
    with poor, pytest.raises(InsufficientCreditsError) as broke:
        poor.generate(MODEL, prompt="a fox")
    assert broke.value.status == 402

    with (
        Client("aio_test_notarealkey", base_url=server.base) as stranger,
        pytest.raises(AuthenticationError) as refused,
    ):
        stranger.account()
    assert refused.value.status == 401


def test_list_tasks_pages_through_everything(client: Client) -> None:
    made = [client.generate(MODEL, prompt=f"fox number {n}").id for n in range(5)]
    listed = [t.id for t in client.list_tasks(page_size=2)]
    assert listed == made[::-1]  # newest first, across three pages
    assert [t.id for t in client.list_tasks(model=MODEL, page_size=100)] == made[::-1]
    assert list(client.list_tasks(model="some-other-model")) == []


def test_list_tasks_filters_by_status(client: Client) -> None:
    done = client.generate(MODEL, prompt="a finished fox").wait(timeout=60)
    completed = [t.id for t in client.list_tasks(status="completed")]
    assert completed == [done.id]
    (listed,) = client.list_tasks(status="completed")
    assert listed.outputs and listed.outputs[0].url == done.outputs[0].url


def test_upload_then_generate_with_it(client: Client, fox: Path) -> None:
    upload = client.upload(fox)
    assert upload.id.startswith("upl_")
    assert (upload.width, upload.height, upload.format) == (640, 480, "png")
    assert httpx2.get(upload.url).content == fox.read_bytes()
    task = client.generate(
        MODEL, prompt="<<<image_1>>> at night", images=[upload.url], aspect_ratio="auto"
    )
    assert task.wait(timeout=60).completed, task.data


def test_refresh_reads_the_task_again(client: Client) -> None:
    task = client.generate(MODEL, prompt="a fox")
    again = client.get_task(task.id).wait(timeout=60)
    assert task.status == "IN_PROGRESS"
    assert task.refresh() is task
    assert task.status == again.status == "completed"
    assert json.dumps(task.data) == json.dumps(again.data)


def test_cancel(server: Server, client: Client) -> None:
    paths = httpx2.get(f"{server.base}/openapi.json").json()["paths"]
    if "/api/v1/tasks/{task_id}/cancel" not in paths:
        pytest.skip("this server has no POST /api/v1/tasks/{task_id}/cancel yet")
    task = client.generate(MODEL, prompt="a fox, never mind")
    task.cancel()
    assert task.status in {"cancelled", "completed"}, task.data
    if task.status == "cancelled":
        assert task.credits == 0
