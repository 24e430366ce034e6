"""The reference layout, for real: two `serve` replicas and two `worker` processes on one
PostgreSQL, with Redis (shared rate limits, wake-ups) and S3-compatible storage (moto),
completing 1,000 sandbox tasks. The workers' fencing counters show that no task was run by
two workers at once: every claim is accounted for and no write-back was refused."""

import json
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import boto3
import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.procs import (
    cli,
    create_key,
    environment,
    free_port,
    process,
    query,
    wait_for_http,
    wait_until,
)
from tests.services import RedisServer, redis_server, s3_credentials, s3_server, s3_storage

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
TASKS = 1000
BUCKET = "scale-out"


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as server:
        yield server


def counter(base: str, name: str) -> float:
    text = httpx2.get(f"{base}/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


def test_two_replicas_two_workers_thousand_tasks(
    tmp_path: Path, database_url: str | None, redis: RedisServer
) -> None:
    if database_url is None:
        pytest.skip("several processes on one database: PostgreSQL's layout")
    with s3_server(BUCKET) as endpoint:
        credentials = s3_credentials(endpoint)
        prefix = f"{secrets.token_hex(4)}/"
        env = environment(
            tmp_path / "data",
            database_url,
            redis_url=redis.url,
            **s3_storage(endpoint, BUCKET, prefix),
            sandbox_latency_s=0.5,
            rate_limit_per_s=0,
            max_in_flight_per_account=TASKS,
            db_pool_size=4,
            db_max_overflow=4,
            log_level="WARNING",
        )
        cli(env, "migrate")
        key = create_key(env, account="scale", credits=TASKS * 6)
        with ExitStack() as stack:
            apis = []
            for i in range(2):
                port = free_port()
                log = tmp_path / f"serve{i}.log"
                api = stack.enter_context(
                    process(env, "serve", "--port", str(port), "--no-runner", log=log)
                )
                apis.append(f"http://127.0.0.1:{port}")
                wait_for_http(apis[-1], api, log)
            workers = []
            for i in range(2):
                port = free_port()
                log = tmp_path / f"worker{i}.log"
                worker = stack.enter_context(
                    process(env, "worker", "--metrics-port", str(port), log=log)
                )
                workers.append(f"http://127.0.0.1:{port}")
                wait_for_http(workers[-1], worker, log)

            def submit(i: int) -> str:
                response = httpx2.post(
                    f"{apis[i % 2]}/api/v1/images/generations",
                    json={"model": "kling-image-o1", "prompt": f"scale {i}"},
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=30,
                )
                assert response.status_code == 200, response.text
                return str(response.json()["data"]["task_id"])

            with ThreadPoolExecutor(16) as pool:
                task_ids = list(pool.map(submit, range(TASKS)))
            wait_until(
                lambda: not query(env, "SELECT 1 FROM tasks WHERE status = 'in_progress' LIMIT 1"),
                timeout=300,
                what="1,000 tasks to finish",
            )
            claims = [counter(w, "mediagate_runner_claims_total") for w in workers]
            lease_lost = [counter(w, "mediagate_runner_lease_lost_total") for w in workers]
            one = httpx2.get(
                f"{apis[1]}/api/v1/tasks/{task_ids[0]}",
                headers={"Authorization": f"Bearer {key}"},
            ).json()["data"]
            image = httpx2.get(one["output"]["images"][0]["url"], follow_redirects=True)

        statuses = dict(query(env, "SELECT status, count(*) FROM tasks GROUP BY status"))
        attempts = int(query(env, "SELECT sum(attempt) FROM tasks")[0][0])
        jobs = query(env, "SELECT count(*), count(DISTINCT reference) FROM sandbox_jobs")[0]
        captures = query(env, "SELECT count(*) FROM ledger_transfers WHERE kind = 'capture'")[0][0]
        listing = boto3.client("s3", **credentials).get_paginator("list_objects_v2")
        stored = sum(
            page.get("KeyCount", 0) for page in listing.paginate(Bucket=BUCKET, Prefix=prefix)
        )
    report = {
        "tasks": TASKS,
        "statuses": statuses,
        "claims_per_worker": claims,
        "sum_of_attempts": attempts,
        "lease_lost_per_worker": lease_lost,
        "sandbox_jobs": list(jobs),
        "captures": captures,
        "objects_in_bucket": stored,
    }
    print("\nscale-out:", json.dumps(report, indent=2))
    assert len(set(task_ids)) == TASKS and statuses == {"completed": TASKS}
    # Every lease taken is one attempt on one task, and no write-back was ever refused:
    # no two workers held a task at once.
    assert sum(claims) == attempts and lease_lost == [0, 0]
    assert all(c > 0 for c in claims)  # both workers took part
    assert tuple(jobs) == (TASKS, TASKS) and captures == TASKS
    assert stored == 2 * TASKS  # each task's one result and its gallery thumbnail
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
