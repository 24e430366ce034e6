"""The async client against the same real server: the same calls, awaited."""

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from mediagate_client import AsyncClient, InvalidRequestError, RetryPolicy, WaitTimeout
from mgc_servers import Server, faulty_proxy
from PIL import Image

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]
MODEL = "kling-image-o1"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(server: Server, key: str) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(key, base_url=server.base) as sdk:
        yield sdk


async def test_generate_wait_download(client: AsyncClient, tmp_path: Path) -> None:
    task = await client.generate(MODEL, prompt="a fox, asynchronously", aspect_ratio="9:16")
    assert (await task.wait(timeout=60)).status == "completed", task.data
    (path,) = await task.download(tmp_path)
    with Image.open(path) as image:
        assert image.height > image.width


async def test_many_tasks_at_once(client: AsyncClient) -> None:
    results: list[str] = []

    async def one(n: int) -> None:
        task = await client.generate(MODEL, prompt=f"fox {n}")
        results.append((await task.wait(timeout=60)).status)

    async with anyio.create_task_group() as group:
        for n in range(6):
            group.start_soon(one, n)
    assert results == ["completed"] * 6
    listed = [t async for t in client.list_tasks(page_size=4)]
    assert len(listed) == 6


async def test_upload_and_errors(client: AsyncClient, fox: Path) -> None:
    upload = await client.upload(fox)
    assert upload.width == 640
    with pytest.raises(InvalidRequestError) as caught:
        await client.generate(MODEL, prompt="a fox", images=["ftp://nope"])
    assert caught.value.param is not None and caught.value.param.startswith("images")


async def test_a_lost_submit_answer_is_retried_into_the_same_task(server: Server, key: str) -> None:
    with faulty_proxy(server.base) as proxy:
        async with AsyncClient(
            key, base_url=proxy.base, retry=RetryPolicy(backoff_s=0.05)
        ) as client:
            proxy.faults.lose_submits = 1
            task = await client.generate(MODEL, prompt="an async fox, submitted once")
            listed = [t.id async for t in client.list_tasks()]
    assert listed == [task.id]


async def test_wait_timeout_and_polling(server: Server, key: str) -> None:
    with faulty_proxy(server.base) as proxy:
        proxy.faults.strip_prefer = True
        async with AsyncClient(key, base_url=proxy.base) as client:
            task = await client.generate(MODEL, prompt="an async fox, polled")
            with pytest.raises(WaitTimeout):
                await task.wait(timeout=0)
            assert (await task.wait(timeout=60)).completed
