"""Billing's errors (part of the one hierarchy in core/errors.py)."""

from mediagate.core.errors import InvalidRequest, MediagateError, NotFound


class PaymentsNotConfigured(MediagateError):
    """Buying credits is not set up on this server (no Stripe key)"""

    status = 503
    type = "payments_unavailable"


class StripeUnavailable(MediagateError):
    """Stripe could not be reached; nothing was charged, try again in a moment"""

    status = 502
    type = "payments_unavailable"


class InvalidSignature(InvalidRequest):
    """Invalid Stripe-Signature"""


class UnknownPackage(NotFound):
    """No such credit package"""


class UnknownOrder(NotFound):
    """No such order"""


class NotRefundable(InvalidRequest):
    """This order cannot be refunded"""


class InvalidCode(InvalidRequest):
    """That is not a valid code: check it for typos"""


class CodeNotRedeemable(MediagateError):
    """This code cannot be redeemed"""

    status = 409
    type = "conflict"
