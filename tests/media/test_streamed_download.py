"""Results are streamed to a file under a byte cap: a 2 GB upstream result is refused at
the default 500 MB video cap without the process holding more than a chunk of it."""

import tracemalloc
from pathlib import Path

import pytest

from mediagate.media.fetcher import FetchError, FetchPolicy, SafeFetcher
from mediagate.providers.errors import ProviderRejected
from mediagate.providers.http import ResultFetcher
from tests.servers import ImageServer

TWO_GB = 2_000_000_000
VIDEO_CAP = 500_000_000  # MEDIAGATE_VIDEO_MAX_BYTES's default


def loopback_fetcher(images: ImageServer) -> SafeFetcher:
    return SafeFetcher(
        FetchPolicy(
            deadline_s=60,
            ports=frozenset({images.server_address[1]}),
            allow_private=frozenset({"127.0.0.1"}),
        )
    )


async def test_a_2gb_result_stops_at_the_cap_without_memory_growth(
    images: ImageServer, tmp_path: Path
) -> None:
    fetcher = loopback_fetcher(images)
    path = f"/stream?bytes={TWO_GB}&n=cap"
    dest = tmp_path / "result"
    tracemalloc.start()
    try:
        with pytest.raises(FetchError) as caught:
            await fetcher.download(images.url(path), dest, max_bytes=VIDEO_CAP, deadline_s=300)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await fetcher.aclose()
    assert caught.value.reason == "too_large"
    assert f"larger than {VIDEO_CAP} bytes" in caught.value.message
    assert peak < 16 * 2**20, f"peak {peak / 2**20:.1f} MiB while streaming 500 MB"
    assert images.sent[path] < VIDEO_CAP + 64 * 2**20  # we hung up; it did not send 2 GB
    assert dest.stat().st_size <= VIDEO_CAP


async def test_a_declared_length_over_the_cap_is_refused_before_reading(
    images: ImageServer, tmp_path: Path
) -> None:
    fetcher = loopback_fetcher(images)
    path = f"/stream?bytes={TWO_GB}&declare=1&n=declared"
    results = ResultFetcher(fetcher, deadline_s=60)
    with pytest.raises(ProviderRejected) as caught:
        await results.save("fal", images.url(path), tmp_path / "r", max_bytes=VIDEO_CAP)
    await fetcher.aclose()
    assert "over this gateway's cap of 500,000,000 bytes" in caught.value.message
    assert images.sent.get(path, 0) < 64 * 2**20


async def test_a_result_under_the_cap_is_written_whole(images: ImageServer, tmp_path: Path) -> None:
    fetcher = loopback_fetcher(images)
    size = 3_000_123
    dest = tmp_path / "result"
    written = await fetcher.download(
        images.url(f"/stream?bytes={size}"), dest, max_bytes=VIDEO_CAP, deadline_s=60
    )
    await fetcher.aclose()
    pattern = bytes(range(256)) * 256
    assert written == size == dest.stat().st_size
    with dest.open("rb") as f:
        assert f.read(len(pattern)) == pattern
        f.seek(size - 123)
        assert f.read() == pattern[: (size % len(pattern))][-123:]


async def test_a_gzip_bomb_stops_at_the_cap_on_disk_too(
    images: ImageServer, tmp_path: Path
) -> None:
    fetcher = loopback_fetcher(images)
    with pytest.raises(FetchError, match="once decompressed"):
        await fetcher.download(
            images.url("/gzip-bomb?mb=50"), tmp_path / "r", max_bytes=5_000_000, deadline_s=60
        )
    await fetcher.aclose()
