"""What the billing routes need, built once by the app factory (`app.state.billing`)."""

from dataclasses import dataclass

from fastapi import Request

from mediagate.billing.errors import PaymentsNotConfigured
from mediagate.billing.packages import Package, load_packages
from mediagate.billing.stripe_client import Payments, StripePayments
from mediagate.core.redis import RedisLink
from mediagate.core.settings import Settings
from mediagate.keys.ratelimit import RateLimiter
from mediagate.ledger.service import Mode


@dataclass
class BillingState:
    packages: dict[str, Package]
    payments: Payments | None
    redeem_limiter: RateLimiter
    credit_mode: Mode
    """The wallet purchases go to (test only with an sk_test_ key and the operator's say)."""

    def require_payments(self) -> Payments:
        if self.payments is None:
            raise PaymentsNotConfigured()
        return self.payments

    async def aclose(self) -> None:
        if self.payments is not None:
            await self.payments.aclose()


def build_billing(settings: Settings, redis: RedisLink | None) -> BillingState:
    payments = StripePayments(settings) if settings.stripe_secret_key else None
    test = payments is not None and payments.test_key and settings.stripe_test_credits_test
    per_minute = settings.redeem_attempts_per_minute
    return BillingState(
        packages=load_packages(settings.billing_packages_file),
        payments=payments,
        redeem_limiter=RateLimiter(per_minute / 60, per_minute, redis),
        credit_mode="test" if test else "live",
    )


def billing_state(request: Request) -> BillingState:
    state: BillingState = request.app.state.billing
    return state
