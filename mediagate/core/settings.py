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
    """Base of the absolute URLs we hand out (result files); defaults to the request's.
    Required in production, so a client's Host header never shapes a URL we give out."""
    allowed_hosts: list[str] = Field(default_factory=list)
    """Host header values served (e.g. `["api.example.com"]`, `*.example.com` for
    subdomains); any other Host gets 400. Empty: every Host is served."""
    files_base_url: str | None = None
    """Base of the file URLs we hand out (`<base>/files/<key>`), e.g. a separate origin
    such as `https://files.example.com` routed to this server, so user-supplied bytes are
    never served from the dashboard's origin; defaults to PUBLIC_BASE_URL."""
    log_level: str = "INFO"
    max_body_bytes: int = 64 * 1024
    """Largest JSON request body of the API, in bytes (413 above it)."""
    form_max_bytes: int = 16 * 1024
    """Largest dashboard form body (and any other non-API body), in bytes (413 above it)."""

    # Server limits of `mediagate serve` (per server process; see core/serving.py)
    header_timeout_s: float = 10.0
    """Seconds a connection may take to send a request's head (line and headers), counted
    from its first byte, or from the connection's opening if it sends nothing: then closed."""
    body_timeout_s: float = 30.0
    """Seconds a request body may go without a new byte while we wait for it: then closed."""
    max_header_bytes: int = 32 * 1024
    """Largest request head (request line and headers), in bytes; a larger one is answered
    431 and the connection closed."""
    keepalive_timeout_s: int = 5
    """Seconds an idle kept-alive connection stays open between requests."""
    max_connections: int = 1000
    """Open connections (or requests in progress) per server process; a request past it
    is answered 503."""

    # Runner
    embedded_runner: bool = True
    runner_concurrency: int = 64
    runner_poll_interval_s: float = 0.5
    lease_s: float = 30.0
    """A claimed task's lease; a step running longer extends it by a fenced heartbeat
    every third of it, and is stopped if the heartbeat finds the lease taken."""
    step_timeout_s: float = Field(default=600.0, gt=0)
    """Longest one step may run (heartbeat or not): then it is cancelled and retried,
    or, for a submit, left to the replay of an interrupted submit."""
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
    """Private destinations the fetcher may reach (empty by default; tests, trusted internals).
    An IP address or CIDR network is reachable under any name; a host name (exact, no
    wildcards) may resolve to private addresses, for that name only. A name not listed is
    refused if any of its DNS answers is neither public nor in a listed network."""
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
    fal_platform_url: str = "https://api.fal.ai/v1"
    """fal's Platform API, used only by `mediagate providers check` (account billing)."""
    replicate_api_token: str | None = None
    replicate_base_url: str = "https://api.replicate.com"
    openai_api_key: str | None = None
    """OpenAI API key for OpenAI's Images API as an upstream (us -> OpenAI); unrelated to
    the OpenAI-compatible door (clients -> us)."""
    openai_base_url: str = "https://api.openai.com"
    openai_timeout_s: float = Field(default=300.0, gt=0)
    """Longest wait for one OpenAI Images answer: the call is synchronous (the image
    comes in the answer), and a high-quality edit can take minutes. Keep it under
    MEDIAGATE_STEP_TIMEOUT_S."""
    provider_flagged_outputs: Literal["fail", "drop", "deliver"] = "fail"
    """What to do with results a provider flags as unsafe (WaveSpeed `has_nsfw_contents`,
    fal `has_nsfw_concepts`): fail the task as content_policy_violation (nothing charged),
    drop the flagged images and deliver the rest, or deliver everything."""
    provider_timeout_s: float = 30.0
    result_max_bytes: int = Field(default=50_000_000, gt=0)
    """The largest result image we mirror from a provider; a bigger one fails the task."""
    video_max_bytes: int = Field(default=500_000_000, gt=0)
    """The largest result video we mirror (streamed to storage, never held in memory)."""
    result_download_timeout_s: float = Field(default=600.0, gt=0)
    """How long one result's download may take in all (a stalled one fails sooner, after
    MEDIAGATE_FETCH_DEADLINE_S without a byte)."""
    callback_safety_poll_s: float = 10.0
    """With a provider that calls back (needs PUBLIC_BASE_URL), poll only this often, as a
    safety net for a lost callback; the callback itself makes the poll due at once."""
    breaker_threshold: int = 3
    breaker_cooldown_s: float = 30.0

    # /metrics (Prometheus)
    metrics_token: str | None = None
    """When set, /metrics answers only requests with `Authorization: Bearer <token>`
    (401 otherwise), on the API port and on MEDIAGATE_METRICS_PORT alike."""
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """When set, /metrics is served on this port (on MEDIAGATE_METRICS_HOST) from its own
    thread, and the API port's /metrics answers 404. With `serve --workers N` every
    process listens on it (SO_REUSEPORT) and a scrape reaches one of them."""
    metrics_host: str = "127.0.0.1"
    metrics_cache_s: float = Field(default=1.0, ge=0)
    """Scrapes within this many seconds of a reading of the shared gauges get that reading
    (the database is read at most once per interval, per process)."""

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

    # Retention: how long results and uploads are kept, then swept (media/retention.py)
    retention_days_live: int = Field(default=30, ge=0)
    """Days a live task's files (results, posters, thumbnails, reference copies) are kept
    after it ends (0: forever)."""
    retention_days_test: int = Field(default=30, ge=0)
    """The same for test-mode (sandbox) tasks (0: forever)."""
    retention_days_uploads: int = Field(default=30, ge=0)
    """Days an uploaded reference image is kept (0: forever)."""
    retention_interval_s: float = Field(default=300.0, gt=0)
    """How often each worker runs the sweeper (expired files, orphaned uploads)."""
    retention_batch: int = Field(default=500, ge=1)
    """Most tasks, uploads and listed upload objects one sweeper run handles, each: the
    bound on one run's work (the rest waits for the next run)."""
    orphan_upload_grace_s: float = Field(default=3600.0, ge=0)
    """An uploaded object with no upload row is deleted once it is this old (the row is
    written just after the file; an older file without one is a crash's leftover)."""

    # Catalog: extra directories of model declarations (*.toml)
    catalog_paths: list[Path] = Field(default_factory=list)

    # Sandbox provider (aio_test_ keys)
    sandbox_latency_s: float = 1.0
    """Time from submit until the sandbox reports the task done."""
    sandbox_call_delay_s: float = 0.0
    """Extra delay inside every sandbox call, to simulate a slow upstream API."""
    sandbox_render_threads: int = Field(default=2, ge=1)
    """Sandbox images decoded or drawn at once per process, each on its own thread off
    the event loop (a count). Each may hold about one reference's decoded size
    (`max_decoded_bytes`, 128 MiB) at a time; further work waits briefly, then retries."""

    # Dashboard
    signup_test_credits: int = Field(default=100, ge=0)
    """Test credits a new dashboard user gets, to try the sandbox at once (0: none)."""
    login_attempts_per_minute: int = 10
    """Sign-in attempts per (client address, email) pair, per minute (0: no limit)."""
    login_attempts_per_address_per_minute: int = 30
    """Sign-in attempts per client address over all emails, per minute (0: no limit)."""
    login_attempts_per_email_per_hour: int = 60
    """Sign-in attempts per email from all addresses together, per hour: the slower
    back-off that caps a guesser spread over many addresses (0: no limit)."""
    signup_per_address_per_hour: int = 10
    """Sign-ups per client address, per hour (0: no limit)."""
    signup_per_hour: int = 200
    """Sign-ups from everyone together, per hour (0: no limit)."""
    password_hash_threads: int = 2
    """Threads hashing or verifying passwords at once (argon2id: ~0.3 s of one core and
    64 MiB each); further sign-ins and sign-ups wait for a free thread."""
    totp_issuer: str = "mediagate"
    """The issuer name authenticator apps show beside a two-factor entry."""
    two_factor_pending_s: int = Field(default=300, gt=0)
    """Seconds between a correct password and the two-factor code it still needs: then
    the half-done sign-in expires and starts over."""
    two_factor_attempts: int = Field(default=5, gt=0)
    """Codes one half-done sign-in may try before it is ended (sign in again)."""
    two_factor_attempts_per_hour: int = 20
    """Two-factor codes tried per user per hour, over all sign-ins (0: no limit)."""
    account_delete_grace_days: float = Field(default=7, ge=0)
    """Days a deleted account's tasks, uploads and files are kept before they are purged
    (the ledger is never purged: it stays for the operator's books)."""
    account_purge_batch: int = Field(default=200, gt=0)
    """Tasks or uploads one purge pass removes (the worker's maintenance runs passes
    until a deleted account is empty)."""
    account_purge_interval_s: float = 60.0
    """How often a worker looks for deleted accounts past their grace period (0: never)."""

    # Email (mediagate/mail/): unset SMTP_HOST, messages are written to the log instead
    smtp_host: str | None = None
    """SMTP server that sends our email (verification, password reset, receipts, alerts)."""
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = True
    """Upgrade the connection with STARTTLS (port 587); refused if the server cannot."""
    smtp_tls: bool = False
    """TLS from the first byte instead (port 465); STARTTLS is then not used."""
    smtp_from: str = "mediagate <no-reply@localhost>"
    """The From address of every message."""
    smtp_timeout_s: float = 30.0

    # Emailed links (accounts/email_tokens.py): each works once, until it expires
    require_email_verification: bool = False
    """Unconfirmed users may sign in, but not create live keys or buy credits until they
    open the link mailed at sign-up (false: the link is mailed, nothing waits on it)."""
    email_verify_ttl_s: int = Field(default=48 * 3600, gt=0)
    """How long an email-confirmation link works, in seconds."""
    password_reset_ttl_s: int = Field(default=3600, gt=0)
    """How long a password-reset link works, in seconds."""
    email_change_ttl_s: int = Field(default=24 * 3600, gt=0)
    """How long the link confirming a new email address works, in seconds."""
    password_reset_per_address_per_hour: int = 10
    """Password-reset requests per client address, per hour (0: no limit)."""
    password_reset_per_email_per_hour: int = 3
    """Password-reset mails per email address, per hour, from everyone (0: no limit)."""
    email_links_per_user_per_hour: int = 5
    """Confirmation links (sign-up's sent again, a new address) a signed-in user may ask
    to be mailed, per hour (0: no limit)."""
    low_balance_check_interval_s: float = 60.0
    """How often this process looks for live balances below their owners' alert
    thresholds, in seconds (0: never; accounts/low_balance.py)."""

    # Billing: credit packages, Stripe Checkout, redemption codes (mediagate/billing/)
    billing_packages_file: Path | None = None
    """TOML file of the credit packages on sale (unset: the built-in example,
    mediagate/billing/packages.example.toml)."""
    stripe_secret_key: str | None = None
    """Stripe secret key (sk_live_… or sk_test_…); unset, nothing can be bought."""
    stripe_webhook_secret: str | None = None
    """Signing secret (whsec_…) of the webhook endpoint registered at Stripe for
    <base>/api/v1/billing/stripe/webhook."""
    stripe_api_base: str | None = None
    """Base URL of Stripe's API (unset: Stripe's own; tests point it at a fake)."""
    stripe_webhook_tolerance_s: int = 300
    """Oldest webhook signature timestamp accepted, in seconds (replays beyond are 400)."""
    stripe_test_credits_test: bool = False
    """With an sk_test_ key, credit purchases to the test balance (default: live, as the
    key would be in production)."""
    stripe_timeout_s: float = 20.0
    """Longest wait for one Stripe API call, in seconds."""
    billing_reconcile_interval_s: float = 60.0
    """How often this process asks Stripe about unsettled orders, in seconds (0: never)."""
    billing_pending_check_s: float = 600.0
    """Age, in seconds, after which a pending order is checked with Stripe (a webhook
    may never come); checked again at this interval until it settles."""
    redeem_attempts_per_minute: int = 10
    """Redemption-code attempts per account and per client address, each, per minute."""

    # First run
    demo_account: str = "demo"
    demo_credits: int = 1000

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> "Settings":
        if self.environment == "production" and not self.secret_key:
            raise ValueError(
                "MEDIAGATE_SECRET_KEY must be set when MEDIAGATE_ENVIRONMENT=production"
            )
        if self.environment == "production" and not self.public_base_url:
            raise ValueError(
                "MEDIAGATE_PUBLIC_BASE_URL must be set when MEDIAGATE_ENVIRONMENT=production"
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
