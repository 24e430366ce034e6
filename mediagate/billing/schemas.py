"""Request and response shapes of the billing API."""

from typing import Literal

from pydantic import Field

from mediagate.core.schemas import Strict


class RedeemRequest(Strict):
    code: str = Field(min_length=1, description="The redemption code, `MG-…`")


class Redemption(Strict):
    credits: int = Field(description="Credits added")
    mode: Literal["live", "test"] = Field(description="The wallet they went to")
    batch: str = Field(description="The code's batch id")
    available: int = Field(description="Available credits of that wallet now")
