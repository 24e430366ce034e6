"""Prometheus metrics. Counters and histograms are this process's own; the gauges about
the queue and the ledger are read from the database at scrape time (in bounded queries,
observability/gauges.py), so every replica reports the same shared truth."""

from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from mediagate.observability.gauges import Gauges


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.step_seconds = Histogram(
            "mediagate_step_duration_seconds",
            "Time one runner step took",
            ["step"],
            registry=self.registry,
            buckets=(0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.provider_errors = Counter(
            "mediagate_provider_errors_total",
            "Provider answers that were not a success",
            ["provider", "kind"],
            registry=self.registry,
        )
        self.loop_lag = Histogram(
            "mediagate_event_loop_lag_seconds",
            "How late a 50 ms timer fires in the runner's event loop",
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.04, 0.045, 0.05, 0.1, 0.25, 0.5, 1),
        )
        self.claim_seconds = Histogram(
            "mediagate_claim_duration_seconds",
            "Time one claim of due tasks took (the transaction)",
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.claims = Counter(
            "mediagate_runner_claims_total",
            "Tasks this process leased (every lease bumps the task's attempt)",
            registry=self.registry,
        )
        self.lease_lost = Counter(
            "mediagate_runner_lease_lost_total",
            "Write-backs refused by the fence because another runner held the task",
            registry=self.registry,
        )
        self.lease_heartbeats = Counter(
            "mediagate_runner_lease_heartbeats_total",
            "Leases extended while a long step ran (a synchronous provider's call)",
            registry=self.registry,
        )
        self.retention_swept = Counter(
            "mediagate_retention_swept_total",
            "What this process's retention sweeper deleted: tasks' and uploads' files "
            "(expired), orphaned upload objects, and storage keys in all",
            ["kind"],
            registry=self.registry,
        )
        self.tasks_finished = Counter(
            "mediagate_tasks_finished_total",
            "Tasks this process ended, by final status (completed, failed, cancelled)",
            ["status"],
            registry=self.registry,
        )
        self.tasks = Gauge(
            "mediagate_tasks",
            "Tasks by state: in_progress, from the per-account counters",
            ["state"],
            registry=self.registry,
        )
        self.queue_lag = Gauge(
            "mediagate_queue_lag_seconds",
            "Now minus the oldest due task's next_run_at (0 when none is due)",
            registry=self.registry,
        )
        self.holds = Gauge(
            "mediagate_credits_held",
            "Credits held by tasks in progress",
            ["mode"],
            registry=self.registry,
        )

    def apply(self, gauges: Gauges, now: datetime) -> None:
        """Set the shared gauges from a reading of the database (observability/gauges.py)."""
        self.tasks.labels("in_progress").set(gauges.in_progress)
        self.queue_lag.set(gauges.queue_lag_s(now))
        for mode in ("live", "test"):
            self.holds.labels(mode).set(gauges.held.get(mode, 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)
