"""All configuration, in one object: environment variables prefixed MEDIAGATE_."""

import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET_FILE = "secret_key"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEDIAGATE_", env_file=None, extra="ignore")

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Path("data")
    database_url: str | None = None
    """Defaults to SQLite at <data_dir>/mediagate.db."""
    db_pool_size: int = 10
    db_max_overflow: int = 10
    """PostgreSQL connections per process: at most pool size + overflow, plus one LISTEN
    connection for the runner's new-task hints and one for waiting requests' finish hints."""
    sqlite_inline: bool = True
    """SQLite calls run on the event loop's thread (fast; see core/sqlite_inline.py), or
    false: on aiosqlite's helper thread."""
    secret_key: str | None = None
    """HMAC secret for API keys; generated into <data_dir>/secret_key in development."""

    host: str = "127.0.0.1"
    port: int = 8000
    public_base_url: str | None = None
    """Base of the absolute URLs we hand out (result files); defaults to the request's."""
    log_level: str = "INFO"
    max_body_bytes: int = 64 * 1024

    # Runner
    embedded_runner: bool = True
    runner_concurrency: int = 64
    runner_poll_interval_s: float = 0.5
    lease_s: float = 30.0
    reconcile_interval_s: float = 5.0
    step_max_errors: int = 5

    # Waiting requests (Prefer: wait, the OpenAI-compatible door): woken by finish hints
    wait_recheck_s: float = 5.0
    """Seconds between safety re-checks of the tasks requests are waiting on (one batched
    read for all of them), covering a lost finish hint: the most a lost hint delays an
    answer."""

    openai_deadline_s: float = 120.0
    """Seconds the OpenAI-compatible door (/v1/images/...) waits for a task before it
    answers 504 with the task id (the task goes on; poll /api/v1/tasks/{id}). Keep it
    under the clients' own timeout (the openai package's default is 600 s)."""

    # Limits per key / account
    rate_limit_per_s: float = 50.0
    rate_limit_burst: int = 100
    max_in_flight_per_account: int = 200
    key_cache_s: float = 2.0
    """How long a verified key is trusted without reading the database again: a key
    revoked by another process is refused within this time (0: read every request)."""

    # Fetching user URLs (reference images, callbacks): see media/fetcher.py
    fetch_deadline_s: float = 20.0
    fetch_ports: list[int] = Field(default_factory=lambda: [80, 443, 8080, 8443])
    fetch_allow_private_hosts: list[str] = Field(default_factory=list)
    """Hosts or IP literals allowed to be private (off by default; tests, trusted internals)."""
    upload_max_bytes: int = 10_000_000
    fetch_ca_file: Path | None = None
    """Extra trust anchors (PEM) for user URLs over https, e.g. an internal CA."""
    callback_retry_base_s: float = 5.0
    """First retry of a failed client callback; later ones back off (x6, up to 6 h)."""

    # Live providers: each is used only when its credentials are set.
    wavespeed_api_key: str | None = None
    wavespeed_base_url: str = "https://api.wavespeed.ai"
    wavespeed_max_concurrency: int = 2
    """Tasks at WaveSpeed at once (entry tiers allow 2); 0 means no limit."""
    kling_access_key: str | None = None
    kling_secret_key: str | None = None
    kling_base_url: str = "https://api-singapore.klingai.com"
    fal_key: str | None = None
    fal_base_url: str = "https://queue.fal.run"
    provider_timeout_s: float = 30.0
    callback_safety_poll_s: float = 10.0
    """With a provider that calls back (needs PUBLIC_BASE_URL), poll only this often, as a
    safety net for a lost callback; the callback itself makes the poll due at once."""
    breaker_threshold: int = 3
    breaker_cooldown_s: float = 30.0

    # Redis (optional): per-key rate limits shared by every replica, and wake-up hints for
    # workers. Everything keeps working without it, per process and at the poll interval.
    redis_url: str | None = None
    redis_timeout_s: float = 0.25
    """Longest a request waits on Redis before going on without it."""
    redis_retry_s: float = 5.0
    """After a Redis failure, how long to go on without it before trying again."""

    # Result storage: the data directory, or an S3-compatible bucket shared by all machines.
    storage_backend: Literal["local", "s3"] = "local"
    s3_bucket: str | None = None
    s3_prefix: str = ""
    s3_endpoint_url: str | None = None
    """For S3-compatible services (MinIO, R2, …); unset for AWS itself."""
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    """Unset: boto3's usual chain (environment, instance role, …)."""
    s3_serve: Literal["redirect", "proxy"] = "redirect"
    """`/files/{key}` answers with a redirect to a presigned URL, or streams the object."""
    s3_presign_ttl_s: int = 3600

    # Catalog: extra directories of model declarations (*.toml)
    catalog_paths: list[Path] = Field(default_factory=list)

    # Sandbox provider (aio_test_ keys)
    sandbox_latency_s: float = 1.0
    """Time from submit until the sandbox reports the task done."""
    sandbox_call_delay_s: float = 0.0
    """Extra delay inside every sandbox call, to simulate a slow upstream API."""

    # Dashboard
    signup_test_credits: int = 100
    """Test credits a new dashboard user gets, to try the sandbox at once."""
    login_attempts_per_minute: int = 10
    """Sign-in attempts per client address and per email, each."""

    # First run
    demo_account: str = "demo"
    demo_credits: int = 1000

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> "Settings":
        if self.environment == "production" and not self.secret_key:
            raise ValueError(
                "MEDIAGATE_SECRET_KEY must be set when MEDIAGATE_ENVIRONMENT=production"
            )
        if self.storage_backend == "s3" and not self.s3_bucket:
            raise ValueError("MEDIAGATE_S3_BUCKET must be set when MEDIAGATE_STORAGE_BACKEND=s3")
        return self

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'mediagate.db'}"

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    @cached_property
    def hmac_secret(self) -> bytes:
        if self.secret_key:
            return self.secret_key.encode()
        return _development_secret(self.data_dir).encode()


def _development_secret(data_dir: Path) -> str:
    """A random secret kept in the data directory so keys survive restarts."""
    path = data_dir / DEV_SECRET_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()
