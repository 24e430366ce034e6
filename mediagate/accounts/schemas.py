"""Response model of GET /api/v1/account, for the OpenAPI schema."""

from typing import Literal

from pydantic import Field

from mediagate.core.schemas import Strict


class AccountRef(Strict):
    id: str
    name: str


class KeyRef(Strict):
    id: str
    mode: Literal["live", "test"]


class Credits(Strict):
    available: int = Field(description="What new tasks may hold")
    held: int = Field(description="Held by tasks in progress")
    posted: int = Field(description="Granted minus charged")


class AccountData(Strict):
    account: AccountRef
    key: KeyRef
    credits: Credits = Field(description="Balance of the key's mode")
    webhook_secret: str = Field(description="`whsec_…`: verifies the callbacks we send")
