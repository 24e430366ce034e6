"""`verify_webhook` against the server's own signer and a real account's secret."""

import json
import time

import httpx2
import pytest
from mediagate_client import WebhookVerificationError, verify_webhook
from mgc_servers import Server

from mediagate.webhooks.signing import headers as signed_headers

BODY = json.dumps({"task_id": "task_abc", "status": "completed"}).encode()


@pytest.fixture(scope="module")
def secret(server: Server) -> str:
    from tests.e2e.procs import create_key

    key = create_key(server.env, account="webhooks", credits=0)
    account = httpx2.get(
        f"{server.base}/api/v1/account", headers={"Authorization": f"Bearer {key}"}
    ).json()["data"]
    assert account["webhook_secret"].startswith("whsec_")
    return str(account["webhook_secret"])


def test_a_genuine_delivery_verifies(secret: str) -> None:
    now = int(time.time())
    headers = signed_headers(secret, "msg_1", now, BODY)
    assert verify_webhook(secret, headers, BODY) == {"task_id": "task_abc", "status": "completed"}
    # Header names in any case, as a framework may hand them over; the body as text too.
    upper = {k.upper(): v for k, v in headers.items()}
    assert verify_webhook(secret, upper, BODY.decode())["status"] == "completed"


def test_several_signatures_one_of_which_matches(secret: str) -> None:
    now = int(time.time())
    headers = signed_headers(secret, "msg_2", now, BODY)
    headers["webhook-signature"] = "v1,bm90IHRoaXMgb25l " + headers["webhook-signature"]
    assert verify_webhook(secret, headers, BODY)["task_id"] == "task_abc"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda h, b: (h, b + b" "), "No webhook-signature matches"),
        (lambda h, b: ({**h, "webhook-id": "msg_other"}, b), "No webhook-signature matches"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "webhook-id"}, b), "Missing"),
        (lambda h, b: ({**h, "webhook-timestamp": "soon"}, b), "not a number"),
        (lambda h, b: ({**h, "webhook-signature": "v2,abc"}, b), "No webhook-signature matches"),
    ],
)
def test_tampering_is_refused(secret: str, change, reason: str) -> None:
    headers, body = change(signed_headers(secret, "msg_3", int(time.time()), BODY), BODY)
    with pytest.raises(WebhookVerificationError, match=reason):
        verify_webhook(secret, headers, body)


def test_an_old_delivery_is_refused(secret: str) -> None:
    then = int(time.time()) - 3600
    headers = signed_headers(secret, "msg_4", then, BODY)
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify_webhook(secret, headers, BODY)
    assert verify_webhook(secret, headers, BODY, now=then + 10)["status"] == "completed"


def test_another_secret_is_refused(secret: str) -> None:
    headers = signed_headers(secret, "msg_5", int(time.time()), BODY)
    other = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
    with pytest.raises(WebhookVerificationError):
        verify_webhook(other, headers, BODY)
