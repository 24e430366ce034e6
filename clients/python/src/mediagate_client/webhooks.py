"""Checking a task callback: the server signs each delivery per Standard Webhooks
(https://www.standardwebhooks.com/, "Verifying webhooks"): `webhook-signature` holds one
or more space-separated `v1,<base64 HMAC-SHA256>` of `"{webhook-id}.{webhook-timestamp}.{body}"`,
keyed with the base64 bytes after the `whsec_` prefix of the account's webhook secret."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from mediagate_client.errors import WebhookVerificationError

SECRET_PREFIX = "whsec_"
TOLERANCE_S = 300
"""A delivery older or newer than this is refused: a captured one cannot be replayed later."""


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    tolerance_s: int = TOLERANCE_S,
    now: float | None = None,
) -> dict[str, Any]:
    """The task object of a genuine callback, from its raw `body` (bytes as received,
    before any JSON parsing); WebhookVerificationError otherwise."""
    raw = body.encode() if isinstance(body, str) else body
    lower = {name.lower(): value for name, value in headers.items()}
    msg_id = lower.get("webhook-id")
    stamp = lower.get("webhook-timestamp")
    signatures = lower.get("webhook-signature")
    if not (msg_id and stamp and signatures):
        raise WebhookVerificationError("Missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not a number") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise WebhookVerificationError("webhook-timestamp is outside the tolerance")
    expected = _signature(secret, msg_id, timestamp, raw)
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected.encode()):
            break
    else:
        raise WebhookVerificationError("No webhook-signature matches this body and secret")
    try:
        payload = json.loads(raw)
    except ValueError:
        raise WebhookVerificationError("The signed body is not JSON") from None
    if not isinstance(payload, dict):
        raise WebhookVerificationError("The signed body is not a JSON object")
    return payload


def _signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        raise WebhookVerificationError("The secret is not a whsec_ base64 secret") from None
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return base64.b64encode(mac).decode()
