"""Request and response shapes of the billing API."""

from pydantic import BaseModel, Field


class Redemption(BaseModel):
    credits: int = Field(description="Credits added")
    mode: str = Field(description="The wallet they went to: live or test")
    batch: str = Field(description="The code's batch id")
    available: int = Field(description="Available credits of that wallet now")
