"""Image checks: magic bytes, header-only size checks, the model's input rules."""

import dataclasses
import io
import struct
import tomllib
import tracemalloc
import zlib

import pytest
from PIL import Image

from mediagate.catalog.loader import BUILTIN_DIR, load_catalog, parse_spec
from mediagate.media.fetcher import FetchPolicy, SafeFetcher
from mediagate.media.images import ImageRejected, check_reference, inspect_image, sniff_format
from mediagate.media.references import ReferenceError, ReferenceLoader, nearest_ratio
from mediagate.media.storage import LocalStorage
from tests.media.test_fetcher_corpus import Recorder
from tests.servers import ImageServer, make_image, png_header_only

RULES = load_catalog().get("kling-image-o1").inputs


def png_16bit_rgba(width: int, height: int) -> bytes:
    """A 16-bit RGBA PNG whose every row is Paeth-filtered zeros: 6000x6000 compresses to
    about 290 KB, under every byte and pixel cap, and decodes to 144 MB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    row = b"\x04" + bytes(width * 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def encoded(mode: str, size: tuple[int, int], fmt: str, frames: int = 1) -> bytes:
    out = io.BytesIO()
    bands = Image.getmodebands(mode)
    images = [Image.new(mode, size, (60 * i, *[255] * (bands - 1))) for i in range(frames)]
    extra = {"save_all": True, "append_images": images[1:]} if frames > 1 else {}
    images[0].save(out, format=fmt, **extra)
    return out.getvalue()


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
            ReferenceError,
            match=r"images\[0\]: unreachable \(no such uploaded file; uploads are deleted at "
            r"their expires_at\)",
        ):
            await loader.load_all(["http://127.0.0.1:8000/files/up_" + "b" * 32 + ".png"], RULES)
    finally:
        await safe.aclose()
    assert recorder.requests == []
    assert loader.own_file("https://other.example/files/up_" + "a" * 32 + ".png") is None


def test_finding_4_a_16_bit_rgba_png_under_the_pixel_cap_is_refused_by_its_decoded_size() -> None:
    data = png_16bit_rgba(6000, 6000)
    assert len(data) < 400_000  # under max_bytes, and under max_pixels:
    assert inspect_image(data, RULES.formats, max_pixels=RULES.max_pixels).width == 6000
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "RGBA"  # Pillow holds 16 bits per channel as 8: 4 bytes/pixel
    tracemalloc.start()
    with pytest.raises(ImageRejected) as rejected:
        check_reference(data, RULES)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert str(rejected.value) == (
        "too large to decode (6000x6000 RGBA PNG: 144000000 bytes of memory; at most 134217728)"
    )
    assert peak < 5_000_000  # told from the header: nothing was decoded


@pytest.mark.parametrize(
    ("mode", "fmt", "frames", "per_pixel"),
    [
        ("L", "PNG", 1, 1),
        ("P", "PNG", 1, 1),
        ("I;16", "PNG", 1, 2),
        ("LA", "PNG", 1, 4),
        ("RGB", "PNG", 1, 4),  # Pillow stores RGB in 4 bytes a pixel
        ("RGBA", "PNG", 1, 4),
        ("RGBA", "PNG", 3, 12),  # animated: previous frame and disposal canvas as well
        ("RGB", "JPEG", 1, 4),
        ("L", "JPEG", 1, 1),
        ("CMYK", "JPEG", 1, 4),
        ("RGB", "WEBP", 1, 16),  # libwebp's animation decoder, even for a still image
        ("RGBA", "WEBP", 3, 16),
    ],
)
def test_decoded_size_counts_mode_and_frames_as_pillow_holds_them(
    mode: str, fmt: str, frames: int, per_pixel: int
) -> None:
    info = inspect_image(encoded(mode, (400, 300), fmt, frames))
    assert info.frames == frames
    assert info.decoded_bytes == 400 * 300 * per_pixel


def test_decoded_size_cap_is_inclusive_and_names_the_frames() -> None:
    animated = encoded("RGBA", (400, 300), "PNG", frames=2)
    exact = dataclasses.replace(RULES, max_decoded_bytes=400 * 300 * 12)
    check_reference(animated, exact)
    with pytest.raises(ImageRejected, match=r"\(400x300 RGBA PNG, 2 frames: 1440000 bytes"):
        check_reference(animated, dataclasses.replace(exact, max_decoded_bytes=1_439_999))


def test_the_decoded_size_cap_is_read_from_the_model_declaration() -> None:
    raw = tomllib.loads((BUILTIN_DIR / "kling-image-o1.toml").read_text())
    assert raw["inputs"]["max_decoded_bytes"] == RULES.max_decoded_bytes == 128 * 1024 * 1024
    raw["inputs"]["max_decoded_bytes"] = 1000
    assert parse_spec(raw).inputs.max_decoded_bytes == 1000
