"""When stored files expire: a task's files a number of days after it ends (per mode),
an upload's a number of days after it was made (MEDIAGATE_RETENTION_DAYS_*; 0 keeps them
forever). Computed from the settings, so a changed retention applies to every task."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from mediagate.core.settings import Settings


@dataclass(frozen=True)
class Retention:
    days_live: int
    days_test: int
    days_uploads: int

    @classmethod
    def from_settings(cls, settings: Settings) -> "Retention":
        return cls(
            settings.retention_days_live,
            settings.retention_days_test,
            settings.retention_days_uploads,
        )

    def days(self, mode: str) -> int:
        return self.days_test if mode == "test" else self.days_live

    def task_expiry(self, mode: str, completed_at: datetime | None) -> datetime | None:
        """When a finished task's files are deleted; None while it runs, or kept forever."""
        days = self.days(mode)
        if completed_at is None or days == 0:
            return None
        return completed_at + timedelta(days=days)

    def upload_expiry(self, created_at: datetime) -> datetime | None:
        if self.days_uploads == 0:
            return None
        return created_at + timedelta(days=self.days_uploads)

    def task_cutoff(self, mode: str, now: datetime) -> datetime | None:
        """Tasks of `mode` that ended before this have expired (None: none ever do)."""
        days = self.days(mode)
        return None if days == 0 else now - timedelta(days=days)

    def upload_cutoff(self, now: datetime) -> datetime | None:
        return None if self.days_uploads == 0 else now - timedelta(days=self.days_uploads)
