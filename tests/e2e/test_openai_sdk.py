"""The official `openai` package, unmodified, against a real `mediagate serve`: only
`base_url=…/v1` and an `aio_test_…` key change. Needs the package (the `dev` extra);
skipped where it is not installed."""

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from mediagate.media.images import inspect_image
from tests.e2e.procs import cli, create_key, environment, free_port, process, wait_for_http
from tests.servers import make_image

openai = pytest.importorskip("openai")
pytestmark = [pytest.mark.e2e]
MODEL = "kling-image-o1"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[tuple[str, str]]:
    folder = tmp_path_factory.mktemp("openai-door")
    env = environment(folder / "data", module_database_url, sandbox_latency_s=0.2)
    cli(env, "migrate")
    key = create_key(env, account="openai-sdk", credits=200)
    port = free_port()
    log = folder / "serve.log"
    with process(env, "serve", "--port", str(port), log=log) as proc:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(base, proc, log)
        yield base, key


@pytest.fixture
def client(server: tuple[str, str]) -> Iterator[Any]:
    base, key = server
    assert key.startswith("aio_test_")
    with openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0) as sdk:
        yield sdk


def test_images_generate_with_urls(client: Any) -> None:
    result = client.images.generate(
        model=MODEL, prompt="a red fox in the snow", n=2, size="1792x1024"
    )
    assert isinstance(result.created, int)
    assert len(result.data) == 2
    image = httpx2.get(result.data[0].url)
    assert image.status_code == 200
    info = inspect_image(image.content)
    assert info.width > info.height


def test_images_generate_b64_json(client: Any) -> None:
    result = client.images.generate(
        model=MODEL,
        prompt="a lighthouse",
        response_format="b64_json",
        size="1024x1024",
        quality="hd",
    )
    (item,) = result.data
    assert item.url is None
    info = inspect_image(base64.b64decode(item.b64_json))
    assert info.width == info.height


def test_images_edit_with_files(client: Any, tmp_path: Path) -> None:
    path = tmp_path / "fox.png"
    path.write_bytes(make_image(640, 480))
    with path.open("rb") as one:
        result = client.images.edit(model=MODEL, image=one, prompt="the fox, at night")
    assert len(result.data) == 1
    assert httpx2.get(result.data[0].url).status_code == 200
    second = io.BytesIO(make_image(500, 500, color=(20, 120, 220)))
    second.name = "sky.png"
    with path.open("rb") as first:
        result = client.images.edit(
            model=MODEL, image=[first, second], prompt="both", response_format="b64_json"
        )
    assert inspect_image(base64.b64decode(result.data[0].b64_json)).width > 0


def test_models_list(client: Any) -> None:
    listed = [m.id for m in client.models.list()]
    assert MODEL in listed and len(listed) == len(set(listed)) > 1  # every image model
    assert client.models.retrieve(MODEL).id == MODEL


def test_errors_are_the_packages_typed_errors(client: Any, server: tuple[str, str]) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        client.images.generate(model=MODEL, prompt="x", size="999x999")
    assert bad.value.code == "unsupported_size"
    assert bad.value.param == "size"
    assert "nearest supported" in bad.value.message
    with pytest.raises(openai.NotFoundError):
        client.images.generate(model="dall-e-3", prompt="x")
    base, _ = server
    with (
        openai.OpenAI(base_url=f"{base}/v1", api_key="sk-not-ours", max_retries=0) as stranger,
        pytest.raises(openai.AuthenticationError),
    ):
        stranger.images.generate(model=MODEL, prompt="x")
