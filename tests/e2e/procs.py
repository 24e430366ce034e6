"""Real mediagate processes on loopback for end-to-end tests."""

import asyncio
import itertools
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def environment(data_dir: Path, database_url: str | None = None, **settings: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAGATE_")}
    if database_url:
        env["MEDIAGATE_DATABASE_URL"] = database_url
    env.update(
        {
            "MEDIAGATE_DATA_DIR": str(data_dir),
            "MEDIAGATE_SECRET_KEY": "e2e-secret",
            "MEDIAGATE_LOG_LEVEL": "INFO",
        }
    )
    env.update({f"MEDIAGATE_{k.upper()}": str(v) for k, v in settings.items()})
    return env


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "mediagate", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def create_key(env: dict[str, str], *, account: str, credits: int, test: bool = True) -> str:
    flags = ["--test"] if test else []
    out = cli(
        env, "keys", "create", "--account", account, "--credits", str(credits), "--json", *flags
    )
    return str(json.loads(out)["key"])


@contextmanager
def process(env: dict[str, str], *args: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mediagate", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_until(condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_for_http(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    def up() -> bool:
        assert proc.poll() is None, f"server exited: {log.read_text()[-3000:]}"
        try:
            return httpx2.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx2.TransportError:
            return False

    wait_until(up, timeout=30, what="the server to answer /healthz")


def query(env: dict[str, str], sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read the database as an operator would (SQLite or PostgreSQL, `?` placeholders)."""
    url = env.get("MEDIAGATE_DATABASE_URL")
    if url is None:
        path = Path(env["MEDIAGATE_DATA_DIR"]) / "mediagate.db"
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as conn:
            return list(conn.execute(sql, params))
    counter = itertools.count(1)
    numbered = re.sub(r"\?", lambda _m: f"${next(counter)}", sql)

    async def go() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(url.replace("+asyncpg", ""))
        try:
            return [tuple(r) for r in await conn.fetch(numbered, *params)]
        finally:
            await conn.close()

    return asyncio.run(go())


@contextmanager
def api_only(env: dict[str, str], folder: Path) -> Iterator[str]:
    """A `serve --no-runner` process (workers do the tasks); its base URL."""
    port = free_port()
    log = folder / "serve.log"
    with process(env, "serve", "--port", str(port), "--no-runner", log=log) as api:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(base, api, log)
        yield base


def poll(base: str, key: str, task_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = httpx2.get(
            f"{base}/api/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {key}"}
        ).json()["data"]
        if data["status"] != "IN_PROGRESS":
            return dict(data)
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} still in progress after {timeout} s")


def submit(base: str, key: str, body: dict[str, Any], endpoint: str = "images/generations") -> str:
    response = httpx2.post(
        f"{base}/api/v1/{endpoint}", json=body, headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["status"] == "IN_PROGRESS"
    return str(response.json()["data"]["task_id"])


def credits(base: str, key: str) -> dict[str, int]:
    return dict(
        httpx2.get(f"{base}/api/v1/account", headers={"Authorization": f"Bearer {key}"}).json()[
            "data"
        ]["credits"]
    )


def run_model(
    server: dict[str, Any],
    images: Any,
    key: str,
    model: str,
    body: dict[str, Any],
    prompt: str,
    *,
    endpoint: str = "images/generations",
    timeout: float = 60,
) -> tuple[dict[str, Any], int]:
    """Submit `model` with `body` (its `images` paths served by `images`) to a served
    gateway, wait; the finished task and the credits it took from the account."""
    base = server["base"]
    request = {"model": model, "prompt": prompt, **body}
    if "images" in body:
        request["images"] = [images.url(path) for path in body["images"]]
    before = credits(base, key)["available"]
    task = poll(base, key, submit(base, key, request, endpoint), timeout=timeout)
    return task, before - credits(base, key)["available"]
