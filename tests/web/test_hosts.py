"""The Host header never shapes what we answer: production needs PUBLIC_BASE_URL, and an
allowed-hosts list refuses every other Host."""

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2
import pytest
from pydantic import ValidationError

from mediagate.app import create_app
from mediagate.core.migrate import upgrade
from mediagate.core.settings import Settings
from tests.e2e.procs import environment, free_port


def test_finding_12_production_refuses_to_start_without_a_public_base_url(
    tmp_path: Path,
) -> None:
    env = environment(tmp_path / "data", environment="production")
    done = subprocess.run(
        [sys.executable, "-m", "mediagate", "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "MEDIAGATE_PUBLIC_BASE_URL must be set" in done.stderr
    assert not (tmp_path / "data" / "mediagate.db").exists()  # stopped before migrating


def test_production_settings_take_a_public_base_url() -> None:
    with pytest.raises(ValidationError, match="PUBLIC_BASE_URL"):
        Settings(environment="production", secret_key="s")
    settings = Settings(
        environment="production", secret_key="s", public_base_url="https://api.example.com"
    )
    assert settings.public_base_url == "https://api.example.com"


async def test_finding_12_allowed_hosts_refuse_another_host(make_settings: Any) -> None:
    settings = make_settings(allowed_hosts=["gateway.test", "*.gateway.test"])
    await asyncio.to_thread(upgrade, settings)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
            assert (await c.get("/healthz")).status_code == 200
            assert (await c.get("/login", headers={"Host": "eu.gateway.test"})).status_code == 200
            for path in ("/healthz", "/login", "/api/v1/models/", "/dashboard"):
                answer = await c.get(path, headers={"Host": "evil.example"})
                assert answer.status_code == 400, path
                assert "evil.example" not in answer.headers.get("location", "")


async def test_finding_12_no_redirect_reflects_the_host_header(
    client: httpx2.AsyncClient,
) -> None:
    """Without an allowed-hosts list, a trailing slash is a 404, not a redirect to the
    Host the client named (Starlette builds those from the request)."""
    answer = await client.get("/api/v1/models/", headers={"Host": "evil.example"})
    assert answer.status_code == 404
    assert "evil.example" not in answer.headers.get("location", "")
