"""Image checks: magic bytes, header-only size checks, the model's input rules."""

import io
import tracemalloc

import pytest
from PIL import Image

from mediagate.catalog.loader import load_catalog
from mediagate.media.fetcher import FetchPolicy, SafeFetcher
from mediagate.media.images import ImageRejected, check_reference, inspect_image, sniff_format
from mediagate.media.references import ReferenceError, ReferenceLoader, nearest_ratio
from mediagate.media.storage import LocalStorage
from tests.media.test_fetcher_corpus import Recorder
from tests.servers import ImageServer, make_image, png_header_only

RULES = load_catalog().get("kling-image-o1").inputs


@pytest.mark.parametrize(("fmt", "name"), [("png", "png"), ("jpg", "jpeg"), ("webp", "webp")])
def test_accepted_formats(fmt: str, name: str) -> None:
    info = check_reference(make_image(800, 600, fmt), RULES)
    assert (info.format, info.width, info.height) == (name, 800, 600)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (make_image(299, 600), "too small (299x600; each side must be at least 300 px)"),
        (make_image(300, 751), "aspect ratio out of range (300x751"),
        (make_image(751, 300), "aspect ratio out of range"),
        (b"<html>hello</html>", "not an image"),
        (b"GIF89a" + b"\0" * 100, "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"garbage" * 10, "not a readable PNG image"),
        (png_header_only(20_000, 20_000), "too many pixels"),
        (png_header_only(50_000, 50_000), "too many pixels"),
        (png_header_only(7_000, 7_000), "too many pixels (7000x7000; at most 36000000)"),
    ],
)
def test_rejected_with_the_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ImageRejected, match=reason.replace("(", r"\(").replace(")", r"\)")):
        check_reference(data, RULES)


def test_aspect_limits_are_inclusive() -> None:
    check_reference(make_image(300, 750), RULES)
    check_reference(make_image(750, 300), RULES)


def test_too_many_bytes() -> None:
    data = make_image(400, 400)
    small = type(RULES)(
        formats=RULES.formats, min_side=300, max_aspect=2.5, max_bytes=len(data) - 1
    )
    with pytest.raises(ImageRejected, match="too large"):
        check_reference(data, small)


def test_content_type_is_never_trusted() -> None:
    assert sniff_format(b"<html>") is None
    assert sniff_format(make_image(10, 10, "webp")) == "webp"


def test_huge_images_are_rejected_from_the_header_without_decoding() -> None:
    tracemalloc.start()
    for side in (20_000, 50_000):
        with pytest.raises(ImageRejected, match="too many pixels"):
            check_reference(png_header_only(side, side), RULES)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 5_000_000  # decoding 20000x20000 RGB would need 1.2 GB


async def test_the_prepare_path_rejects_huge_pngs_by_index(images: ImageServer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    safe = SafeFetcher(
        FetchPolicy(
            ports=frozenset({images.server_address[1]}), allow_private=frozenset({"127.0.0.1"})
        )
    )
    loader = ReferenceLoader(safe, LocalStorage(tmp_path), set())
    urls = [
        images.url("/img/400x400.png"),
        images.url("/header-only.png?w=20000&h=20000"),
        images.url("/header-only.png?w=50000&h=50000"),
    ]
    try:
        with pytest.raises(ReferenceError) as rejected:
            await loader.load_all(urls, RULES)
    finally:
        await safe.aclose()
    message = str(rejected.value)
    assert "images[0]" not in message
    assert "images[1]: too many pixels" in message and "images[2]: too many pixels" in message


def test_inspect_reads_the_header_only() -> None:
    info = inspect_image(png_header_only(4000, 3000))
    assert (info.width, info.height) == (4000, 3000)
    truncated = pytest.raises(OSError, match="truncated")
    with Image.open(io.BytesIO(png_header_only(4000, 3000))) as image, truncated:
        image.load()  # there are no pixels: proof that inspect never decoded


@pytest.mark.parametrize(
    ("size", "ratio"),
    [
        ((1600, 900), "16:9"),
        ((900, 1600), "9:16"),
        ((1000, 1000), "1:1"),
        ((2100, 900), "21:9"),
        ((1200, 800), "3:2"),
        ((1000, 1300), "3:4"),
    ],
)
def test_nearest_ratio(size: tuple[int, int], ratio: str) -> None:
    ratios = load_catalog().get("kling-image-o1").params["aspect_ratio"].enum or ()
    assert nearest_ratio(*size, ratios) == ratio


async def test_our_own_upload_urls_are_read_from_storage_not_the_network(tmp_path) -> None:  # type: ignore[no-untyped-def]
    recorder = Recorder()
    safe = SafeFetcher(FetchPolicy(), transport=recorder)
    storage = LocalStorage(tmp_path)
    await storage.put("up_" + "a" * 32 + ".png", make_image(500, 500))
    loader = ReferenceLoader(safe, storage, {"http://127.0.0.1:8000", "https://gw.example"})
    try:
        [ref] = await loader.load_all(["https://gw.example/files/up_" + "a" * 32 + ".png"], RULES)
        assert (ref.info.width, ref.info.height) == (500, 500)
        with pytest.raises(
            ReferenceError, match=r"images\[0\]: unreachable \(no such uploaded file\)"
        ):
            await loader.load_all(["http://127.0.0.1:8000/files/up_" + "b" * 32 + ".png"], RULES)
    finally:
        await safe.aclose()
    assert recorder.requests == []
    assert loader.own_file("https://other.example/files/up_" + "a" * 32 + ".png") is None
