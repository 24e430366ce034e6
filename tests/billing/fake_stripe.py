"""A fake of the Stripe endpoints mediagate uses, served for real on loopback: Checkout
Sessions (create with Idempotency-Key, retrieve), Events (list), Refunds (create). Every
object starts from the documented example in stripe_fixtures/ (each names the API
reference page it came from). Webhook events are signed the way Stripe documents
(https://docs.stripe.com/webhooks#verify-manually): `Stripe-Signature: t=<unix
time>,v1=<hex HMAC-SHA256 of "<t>.<payload>" keyed with the endpoint secret>`.

The test drives what a customer and Stripe would do: `pay`, `expire`, `refund`; then
delivers the resulting event (or not, to exercise the reconciler). A browser can also pay
on the session's `url`: a tiny stand-in for Stripe's hosted Checkout page whose Pay button
completes the session, delivers the signed event to `webhook_url` (the endpoint an
operator registers at Stripe) and redirects to the session's `success_url`, as Checkout
does (https://docs.stripe.com/checkout/fulfillment,
https://docs.stripe.com/payments/checkout/custom-success-page)."""

import asyncio
import copy
import hashlib
import hmac
import html
import json
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx2
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

FIXTURES = Path(__file__).parent / "stripe_fixtures"
SECRET_KEY = "sk_test_fake51MediagateTests"
WEBHOOK_SECRET = "whsec_fake_mediagate_endpoint_secret"


def fixture(name: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((FIXTURES / f"{name}.json").read_text())["object"])


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def unflatten(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding (`a[b][0][c]=v`) back into nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value

    def lists(node: Any) -> Any:
        if isinstance(node, dict):
            if node and all(k.isdigit() for k in node):
                return [lists(node[k]) for k in sorted(node, key=int)]
            return {k: lists(v) for k, v in node.items()}
        return node

    return lists(root)  # type: ignore[no-any-return]


def sign(payload: bytes, secret: str = WEBHOOK_SECRET, at: int | None = None) -> str:
    t = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


@dataclass
class FakeStripe:
    key: str = SECRET_KEY
    base: str = ""
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    """By PaymentIntent id."""
    events: list[dict[str, Any]] = field(default_factory=list)
    idempotent: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    down: bool = False
    webhook_url: str | None = None
    """Where the hosted pay page delivers its `checkout.session.completed` (unset: nowhere)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def livemode(self) -> bool:
        return self.key.startswith("sk_live_")

    # What the customer and Stripe do.

    def _event(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        event = fixture("event")
        event.update(
            id=_id("evt"),
            type=kind,
            created=int(time.time()),
            livemode=self.livemode,
            data={"object": copy.deepcopy(obj)},
            api_version="2025-09-30.clover",
        )
        self.events.append(event)
        return event

    def pay(self, session_id: str) -> dict[str, Any]:
        """The customer pays: the session completes, a charge exists; the event."""
        with self.lock:
            session = self.sessions[session_id]
            payment_intent = _id("pi")
            charge = fixture("charge")
            charge.update(
                id=_id("ch"),
                amount=session["amount_total"],
                amount_captured=session["amount_total"],
                currency=session["currency"],
                payment_intent=payment_intent,
                livemode=self.livemode,
                created=int(time.time()),
            )
            self.charges[payment_intent] = charge
            session.update(status="complete", payment_status="paid", payment_intent=payment_intent)
            return self._event("checkout.session.completed", session)

    def expire(self, session_id: str) -> dict[str, Any]:
        with self.lock:
            session = self.sessions[session_id]
            session.update(status="expired")
            return self._event("checkout.session.expired", session)

    def refund(self, payment_intent: str, amount: int | None = None) -> dict[str, Any]:
        """A refund (from Stripe's dashboard, or our POST /v1/refunds); its event."""
        with self.lock:
            return self._refund(payment_intent, amount)[1]

    def _refund(
        self, payment_intent: str, amount: int | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        charge = self.charges[payment_intent]
        left = charge["amount"] - charge["amount_refunded"]
        amount = left if amount is None else amount
        if not 0 < amount <= left:
            raise ValueError(f"cannot refund {amount}, {left} left")
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        refund = fixture("refund")
        refund.update(
            id=_id("re"),
            amount=amount,
            charge=charge["id"],
            payment_intent=payment_intent,
            currency=charge["currency"],
            created=int(time.time()),
        )
        return refund, self._event("charge.refunded", charge)

    def deliver(
        self,
        url: str,
        event: dict[str, Any],
        *,
        secret: str = WEBHOOK_SECRET,
        at: int | None = None,
        tampered: bytes | None = None,
    ) -> httpx2.Response:
        """POST the event to a webhook endpoint, signed as Stripe signs it (`tampered`:
        send these bytes instead, under the event's signature)."""
        body = json.dumps(event).encode()
        return httpx2.post(
            url,
            content=body if tampered is None else tampered,
            headers={
                "Content-Type": "application/json",
                "Stripe-Signature": sign(body, secret, at),
            },
            timeout=30,
        )

    # The hosted Checkout page (a stand-in: Stripe's own is a card form on checkout.stripe.com).

    async def checkout_page(self, request: Request) -> Response:
        sid = request.path_params["sid"]
        self.calls.append(f"{request.method} /c/pay/{sid}")
        session = self.sessions.get(sid)
        if session is None:
            return HTMLResponse("<h1>Something went wrong</h1><p>No such session.</p>", 404)
        if request.method == "POST" and session["status"] == "open":
            event = self.pay(sid)
            if self.webhook_url:  # Stripe delivers the event; the redirect does not wait on it
                await asyncio.to_thread(self.deliver, self.webhook_url, event)
        if session["status"] == "complete":
            # Checkout fills in {CHECKOUT_SESSION_ID} in the success URL.
            done = str(session["success_url"]).replace("{CHECKOUT_SESSION_ID}", sid)
            return RedirectResponse(done, 303)
        if session["status"] == "expired":
            return HTMLResponse("<h1>This checkout session has expired</h1>", 410)
        item = html.escape(f"{session['amount_total'] / 100:.2f} {session['currency'].upper()}")
        return HTMLResponse(
            "<!doctype html><html lang=en><meta name=viewport content='width=device-width'>"
            "<title>Fake Stripe Checkout</title>"
            f"<h1>Pay {item}</h1><p>Billed to {html.escape(str(session.get('customer_email')))}</p>"
            f"<form method=post action='/c/pay/{sid}'>"
            f"<button type=submit>Pay {item}</button></form>"
            f"<p><a href='{html.escape(str(session['cancel_url']))}'>Back</a></p></html>"
        )

    # The API.

    def _error(
        self, status: int, message: str, type_: str = "invalid_request_error"
    ) -> JSONResponse:
        body = fixture("error")
        body["error"].update(message=message, type=type_, code=None, param=None)
        return JSONResponse(body, status)

    async def route(self, request: Request) -> JSONResponse:
        self.calls.append(f"{request.method} {request.url.path}")
        if self.down:
            return self._error(500, "An error occurred with our connection to Stripe.", "api_error")
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return self._error(401, "Invalid API Key provided", "invalid_request_error")
        path, method = request.url.path, request.method
        if method == "POST":
            params = unflatten(parse_qsl((await request.body()).decode(), keep_blank_values=True))
            key = request.headers.get("idempotency-key")
            with self.lock:
                if key and key in self.idempotent:
                    return JSONResponse(self.idempotent[key])
                answer = self._post(path, params)
                if isinstance(answer, JSONResponse):
                    return answer
                if key:
                    self.idempotent[key] = answer
            return JSONResponse(answer)
        query = unflatten(list(request.query_params.multi_items()))
        with self.lock:
            if match := re.fullmatch(r"/v1/checkout/sessions/([\w]+)", path):
                found = self.sessions.get(match[1])
                if found is None:
                    return self._error(404, f"No such checkout.session: '{match[1]}'")
                return JSONResponse(found)
            if path == "/v1/events":
                return JSONResponse(self._list_events(query))
        return self._error(404, f"Unrecognized request URL (GET: {path})")

    def _post(self, path: str, params: dict[str, Any]) -> dict[str, Any] | JSONResponse:
        if path == "/v1/checkout/sessions":
            session = fixture("checkout_session")
            items = params.get("line_items", [])
            total = sum(
                int(i["price_data"]["unit_amount"]) * int(i.get("quantity", 1)) for i in items
            )
            sid = f"cs_{'live' if self.livemode else 'test'}_{secrets.token_hex(16)}"
            session.update(
                id=sid,
                amount_subtotal=total,
                amount_total=total,
                currency=items[0]["price_data"]["currency"] if items else "usd",
                client_reference_id=params.get("client_reference_id"),
                customer_email=params.get("customer_email"),
                metadata=params.get("metadata", {}),
                mode=params.get("mode"),
                success_url=params.get("success_url"),
                cancel_url=params.get("cancel_url"),
                created=int(time.time()),
                expires_at=int(time.time()) + 86400,
                livemode=self.livemode,
                url=f"{self.base}/c/pay/{sid}",
            )
            self.sessions[sid] = session
            return session
        if path == "/v1/refunds":
            pi = params.get("payment_intent", "")
            if pi not in self.charges:
                return self._error(404, f"No such payment_intent: '{pi}'")
            try:
                refund, _ = self._refund(pi, int(params["amount"]) if "amount" in params else None)
            except ValueError as exc:
                return self._error(400, str(exc))
            refund["metadata"] = params.get("metadata", {})
            return refund
        return self._error(404, f"Unrecognized request URL (POST: {path})")

    def _list_events(self, query: dict[str, Any]) -> dict[str, Any]:
        types = query.get("types") or ([query["type"]] if "type" in query else None)
        since = int(query.get("created", {}).get("gte", 0))
        found = [
            e
            for e in reversed(self.events)  # newest first, as Stripe lists them
            if (types is None or e["type"] in types) and e["created"] >= since
        ]
        if after := query.get("starting_after"):
            ids = [e["id"] for e in found]
            found = found[ids.index(after) + 1 :] if after in ids else []
        limit = int(query.get("limit", 10))
        return {
            "object": "list",
            "url": "/v1/events",
            "has_more": len(found) > limit,
            "data": found[:limit],
        }


@contextmanager
def serve_fake_stripe(key: str = SECRET_KEY) -> Iterator[FakeStripe]:
    fake = FakeStripe(key=key)
    app = Starlette(
        routes=[
            Route("/c/pay/{sid}", fake.checkout_page, methods=["GET", "POST"]),
            Route("/{path:path}", fake.route, methods=["GET", "POST", "DELETE"]),
        ]
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "fake Stripe did not start"
        time.sleep(0.02)
    fake.base = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(10)
