from mediagate.core.errors import InvalidRequest, MediagateError


class InsufficientCredits(MediagateError):
    """Insufficient credits"""

    status = 402
    type = "insufficient_credits"


class InvalidAmount(InvalidRequest):
    """Credit amounts are whole numbers from 1 to 1,000,000,000,000"""


class WalletFull(InvalidAmount):
    """This grant would take the wallet past the most credits a wallet may be granted"""
