"""Side by side, in the same run: the LiteLLM proxy (installed from PyPI into its own
virtual environment, bench/.peer-venv) forwarding an OpenAI-style image generation to a
local fake provider, and mediagate accepting the same kind of request. Same machine, same
load generator, same concurrency.

The work differs and the table says so: LiteLLM answers when the provider has answered
(the fake answers at once with a URL); mediagate authenticates, validates against the
model's declaration, holds credits and queues a task in one transaction, and answers with
the task id (its workers do the provider call later).
"""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.api import submit_run
from bench.harness import (
    answers,
    fake,
    free_port,
    markdown,
    spread,
    wait_until_up,
    warm_then_measure,
    write,
)

PEER_VENV = Path(__file__).parent / ".peer-venv"
PEER_PACKAGE = "litellm[proxy]==1.106.2"
MASTER_KEY = "sk-bench-master-key"
CONCURRENCY = 32


def ensure_peer() -> Path:
    """The LiteLLM proxy's own virtual environment (made once; about 700 MB)."""
    binary = PEER_VENV / "bin" / "litellm"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run(
            [str(PEER_VENV / "bin" / "pip"), "install", "--quiet", PEER_PACKAGE], check=True
        )
    return binary


def litellm_run(folder: Path, upstream: str) -> dict[str, Any]:
    binary = ensure_peer()
    config = folder / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: fake-image\n"
        "    litellm_params:\n"
        "      model: openai/dall-e-3\n"
        f"      api_base: {upstream}/v1\n"
        "      api_key: sk-fake\n"
        "general_settings:\n"
        f"  master_key: {MASTER_KEY}\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
    )
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "HOME": str(folder),
    }
    with (folder / "litellm.log").open("ab") as log:
        proc = subprocess.Popen(
            [
                str(binary),
                "--config",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--num_workers",
                "1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, proc, "/health/liveliness")
        body = json.dumps({"model": "fake-image", "prompt": "A red fox in the snow"}).encode()
        headers = {"Authorization": f"Bearer {MASTER_KEY}"}
        return warm_then_measure(
            f"{base}/v1/images/generations",
            method="POST",
            body=body,
            headers=headers,
            concurrency=CONCURRENCY,
            folder=folder,
        )
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mg-bench-") as tmp:
        folder = Path(tmp)
        with fake("openai", folder) as upstream:
            peer = litellm_run(folder, upstream)
            time.sleep(1)
            ours = submit_run("sqlite", 1, folder)  # the same request as bench.api's submit
    ratio = round(ours["rps"] / peer["rps"], 2) if peer["rps"] else None
    return {
        "concurrency": CONCURRENCY,
        "litellm": peer,
        "mediagate": ours,
        "rps_ratio_mediagate_over_litellm": ratio,
    }


def table(r: dict[str, Any]) -> str:
    def row(gateway: str, work: str, m: dict[str, Any]) -> list[object]:
        return [gateway, work, spread(m), spread(m, "p50_ms"), spread(m, "p99_ms"), answers(m)]

    rows = [
        row(
            "LiteLLM proxy 1.106.2 (1 process)",
            "forward to the fake, wait for its answer",
            r["litellm"],
        ),
        row(
            "mediagate (1 process, SQLite)",
            "auth + validate + hold + queue the task",
            r["mediagate"],
        ),
    ]
    return markdown(
        ["gateway", "work per request", "2xx req/s", "p50 ms", "p99 ms", "answers"], rows
    ) + (f"\n\nmediagate / LiteLLM throughput: {r['rps_ratio_mediagate_over_litellm']}×")


if __name__ == "__main__":
    result = run()
    write("peer", result, table(result))
