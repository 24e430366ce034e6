"""Throwaway servers the tests start themselves: Redis (so a test may kill it) and an
S3-compatible server (moto). CI requires them (MEDIAGATE_REQUIRE_SERVICES=1); elsewhere a
missing one skips its tests."""

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import pytest
import redis
from moto.server import ThreadedMotoServer

from tests.e2e.procs import free_port


def unavailable(reason: str) -> None:
    if os.environ.get("MEDIAGATE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required for this test: {reason}")
    pytest.skip(reason)


class RedisServer:
    """A redis-server process of our own on a free port; stop() kills it, start() brings it
    back on the same port (the 'Redis goes away' tests)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.folder)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)


@contextmanager
def redis_server(folder: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed (Debian package redis-server)")
    server = RedisServer(folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def s3_server(bucket: str) -> Iterator[str]:
    """moto's S3-compatible server on loopback, with `bucket` created; its endpoint URL."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", **s3_credentials(endpoint)).create_bucket(Bucket=bucket)
    try:
        yield endpoint
    finally:
        server.stop()


def s3_storage(endpoint: str, bucket: str, prefix: str) -> dict[str, str]:
    """mediagate's settings for that bucket on that server."""
    credentials = s3_credentials(endpoint)
    return {
        "storage_backend": "s3",
        "s3_bucket": bucket,
        "s3_prefix": prefix,
        "s3_endpoint_url": endpoint,
        "s3_access_key_id": credentials["aws_access_key_id"],
        "s3_secret_access_key": credentials["aws_secret_access_key"],
    }


def s3_credentials(endpoint: str) -> dict[str, str]:
    return {
        "endpoint_url": endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": "test-access-key",
        "aws_secret_access_key": "test-secret-key",
    }
