"""The callback receiver and gateway fixtures, shared by the webhook test modules."""

from tests.webhooks.test_callbacks import gateway, receiver, tls

__all__ = ["gateway", "receiver", "tls"]
