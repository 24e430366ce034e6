"""Stripe, behind a small protocol: the official `stripe` library (async calls over
aiohttp), pointed at `MEDIAGATE_STRIPE_API_BASE` when set (its documented base address),
and its own webhook verifier. Everything here answers plain dicts, the shapes of
https://docs.stripe.com/api."""

from typing import Any, Protocol

import stripe

from mediagate.billing.errors import InvalidSignature, StripeUnavailable
from mediagate.core.settings import Settings

WEBHOOK_EVENTS = (
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "charge.refunded",
)
"""The events we act on (register these at Stripe); others are stored and ignored."""


class Payments(Protocol):
    test_key: bool

    async def create_checkout_session(
        self, params: dict[str, Any], *, idempotency_key: str
    ) -> dict[str, Any]: ...

    async def retrieve_session(self, session_id: str) -> dict[str, Any]: ...

    async def create_refund(
        self, params: dict[str, Any], *, idempotency_key: str
    ) -> dict[str, Any]: ...

    async def list_events(
        self, types: tuple[str, ...], created_gte: int
    ) -> list[dict[str, Any]]: ...

    def verify(self, payload: bytes, header: str) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


class StripePayments:
    """The `stripe` library's client, async over aiohttp."""

    EVENT_PAGES = 10

    def __init__(self, settings: Settings) -> None:
        assert settings.stripe_secret_key
        self.test_key = settings.stripe_secret_key.startswith(("sk_test_", "rk_test_"))
        self._http = stripe.AIOHTTPClient(timeout=settings.stripe_timeout_s)
        self.client = stripe.StripeClient(
            settings.stripe_secret_key,
            base_addresses={"api": settings.stripe_api_base} if settings.stripe_api_base else {},
            http_client=self._http,
            max_network_retries=2,  # the library retries safely: idempotency keys on POSTs
        )
        self._secret = settings.stripe_webhook_secret
        self._tolerance = settings.stripe_webhook_tolerance_s

    async def create_checkout_session(
        self, params: dict[str, Any], *, idempotency_key: str
    ) -> dict[str, Any]:
        try:
            found = await self.client.v1.checkout.sessions.create_async(
                params,  # type: ignore[arg-type]
                {"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as exc:
            raise _unavailable(exc) from exc
        return found.to_dict()

    async def retrieve_session(self, session_id: str) -> dict[str, Any]:
        try:
            found = await self.client.v1.checkout.sessions.retrieve_async(session_id)
        except stripe.StripeError as exc:
            raise _unavailable(exc) from exc
        return found.to_dict()

    async def create_refund(
        self, params: dict[str, Any], *, idempotency_key: str
    ) -> dict[str, Any]:
        try:
            refund = await self.client.v1.refunds.create_async(
                params,  # type: ignore[arg-type]
                {"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as exc:
            raise _unavailable(exc) from exc
        return refund.to_dict()

    async def list_events(self, types: tuple[str, ...], created_gte: int) -> list[dict[str, Any]]:
        """Recent events of these types, newest first (a bounded number of pages)."""
        events: list[dict[str, Any]] = []
        params: dict[str, Any] = {
            "types": list(types),
            "created": {"gte": created_gte},
            "limit": 100,
        }
        try:
            for _ in range(self.EVENT_PAGES):
                page = await self.client.v1.events.list_async(params)  # type: ignore[arg-type]
                events.extend(e.to_dict() for e in page.data)
                if not page.has_more or not page.data:
                    break
                params["starting_after"] = page.data[-1].id
        except stripe.StripeError as exc:
            raise _unavailable(exc) from exc
        return events

    def verify(self, payload: bytes, header: str) -> dict[str, Any]:
        """The event, if `header` is Stripe's signature of exactly `payload` made within
        the tolerance; InvalidSignature otherwise (the library checks, not us)."""
        if not self._secret:
            raise InvalidSignature("No webhook signing secret is configured")
        try:
            event = self.client.construct_event(payload, header, self._secret, self._tolerance)
        except stripe.SignatureVerificationError as exc:
            raise InvalidSignature(f"Invalid Stripe-Signature: {exc.user_message}") from None
        except ValueError:
            raise InvalidSignature("The payload is not a Stripe event") from None
        return event.to_dict()

    async def aclose(self) -> None:
        await self._http.close_async()


def _unavailable(exc: stripe.StripeError) -> StripeUnavailable:
    detail = exc.user_message or type(exc).__name__
    return StripeUnavailable(f"Stripe: {detail}")
