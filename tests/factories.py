"""Small keyword-only factories."""

from dataclasses import dataclass

from mediagate.accounts import service as accounts
from mediagate.core.db import Database
from mediagate.core.settings import Settings
from mediagate.keys import service as keys
from mediagate.ledger import service as ledger


@dataclass(frozen=True)
class MadeKey:
    raw: str
    id: str
    account_id: str
    mode: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.raw}"}


class KeyFactory:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    async def __call__(
        self, *, account: str = "acme", mode: ledger.Mode = "test", credits: int = 100
    ) -> MadeKey:
        async with self.db.write() as session:
            acc, _ = await accounts.get_or_create(session, account)
            key, raw = await keys.create_key(
                session, self.settings.hmac_secret, account_id=acc.id, mode=mode
            )
            if credits:
                await ledger.grant(session, acc.id, mode, credits, reason="test")
        return MadeKey(raw=raw, id=key.id, account_id=acc.id, mode=mode)


def generation(**fields: object) -> dict[str, object]:
    body: dict[str, object] = {"model": "kling-image-o1", "prompt": "a red fox"}
    body.update(fields)
    return body
