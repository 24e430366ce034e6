from mediagate.core.errors import InvalidRequest, MediagateError


class InsufficientCredits(MediagateError):
    """Insufficient credits"""

    status = 402
    type = "insufficient_credits"


class InvalidAmount(InvalidRequest):
    """Credit amounts are positive whole numbers"""
