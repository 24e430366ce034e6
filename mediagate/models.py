"""Every table, imported in one place for Alembic and the tests."""

from mediagate.accounts.models import Account, User
from mediagate.billing.models import (
    CodeBatch,
    ExternalEvent,
    Order,
    Redemption,
    RedemptionCode,
)
from mediagate.keys.models import ApiKey
from mediagate.ledger.models import LedgerAccount, LedgerTransfer
from mediagate.media.models import ExpiredFile, Upload
from mediagate.providers.models import ProviderHealth, SandboxJob
from mediagate.tasks.models import IdempotencyKey, Task
from mediagate.web.models import WebSession
from mediagate.webhooks.models import CallbackDelivery

__all__ = [
    "Account",
    "ApiKey",
    "CallbackDelivery",
    "CodeBatch",
    "ExpiredFile",
    "ExternalEvent",
    "IdempotencyKey",
    "LedgerAccount",
    "LedgerTransfer",
    "Order",
    "ProviderHealth",
    "Redemption",
    "RedemptionCode",
    "SandboxJob",
    "Task",
    "Upload",
    "User",
    "WebSession",
]
