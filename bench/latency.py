"""Gateway-added latency: how much longer a task takes through mediagate than the provider
itself needs (the Kling fake, exactly 1 s per task), one task at a time, with provider
callbacks and with polling only. Measured by the client: submit → sees `completed`.

The client is a plain keep-alive connection (http.client) polling every 2 ms: its own
time per request is a fraction of a millisecond, so what is measured is the gateway."""

import http.client
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.fakes import KLING_ACCESS, KLING_SECRET
from bench.harness import bench_environment, bench_key, fake, markdown, serve, write
from tests.e2e.procs import free_port

PROVIDER_S = 1.0
TASKS = 20
BODY = {"model": "kling-image-o1", "prompt": "[fake:latency] one task"}


class Client:
    """One kept-alive connection to the API."""

    def __init__(self, port: int, key: str) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        content = json.dumps(body).encode() if body is not None else None
        self.connection.request(method, path, body=content, headers=self.headers)
        answer = self.connection.getresponse()
        data = answer.read()
        assert answer.status == 200, (answer.status, data[:300])
        return json.loads(data)["data"]

    def close(self) -> None:
        self.connection.close()


def one_mode(folder: Path, upstream: str, callbacks: bool) -> dict[str, Any]:
    port = free_port()
    settings: dict[str, Any] = {
        "kling_access_key": KLING_ACCESS,
        "kling_secret_key": KLING_SECRET,
        "kling_base_url": upstream,
        "fetch_allow_private_hosts": '["127.0.0.1"]',
        "fetch_ports": f"[80, 443, {upstream.rsplit(':', 1)[1]}]",
    }
    if callbacks:
        settings["public_base_url"] = f"http://127.0.0.1:{port}"
    env = bench_environment(folder / ("callbacks" if callbacks else "polling"), None, **settings)
    key = bench_key(env, live=True)
    added = []
    with serve(env, folder, port=port):
        client = Client(port, key)
        for i in range(TASKS + 2):
            started = time.perf_counter()
            task_id = client.call("POST", "/api/v1/images/generations", BODY)["task_id"]
            while True:
                status = client.call("GET", f"/api/v1/tasks/{task_id}")["status"]
                if status != "IN_PROGRESS":
                    break
                time.sleep(0.002)
            assert status == "completed", status
            if i >= 2:  # the first two warm the process up
                added.append((time.perf_counter() - started - PROVIDER_S) * 1000)
        client.close()
    added.sort()
    return {
        "mode": "callbacks" if callbacks else "polling only",
        "tasks": len(added),
        "p50_ms": round(statistics.median(added), 1),
        "p90_ms": round(added[int(0.9 * len(added)) - 1], 1),
        "max_ms": round(added[-1], 1),
    }


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mg-bench-") as tmp:
        folder = Path(tmp)
        with fake("kling", folder, latency=PROVIDER_S) as upstream:
            modes = [one_mode(folder, upstream, callbacks) for callbacks in (True, False)]
    return {"provider_s": PROVIDER_S, "modes": modes}


def table(r: dict[str, Any]) -> str:
    return markdown(
        ["mode", "tasks", "added p50 ms", "added p90 ms", "added max ms"],
        [[m["mode"], m["tasks"], m["p50_ms"], m["p90_ms"], m["max_ms"]] for m in r["modes"]],
    )


if __name__ == "__main__":
    result = run()
    print(json.dumps(result))
    write("latency", result, table(result))
