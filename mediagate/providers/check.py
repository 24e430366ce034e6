"""`mediagate providers check`: do the operator's credentials work? One cheap
authenticated call per configured provider (its balance or account endpoint), which
creates no task and costs nothing."""

from dataclasses import dataclass

from mediagate.core.settings import Settings
from mediagate.media.fetcher import FetchPolicy, SafeFetcher
from mediagate.media.storage import build_storage
from mediagate.providers.configured import build_live, provider_client
from mediagate.providers.errors import ProviderAuthError, ProviderError
from mediagate.providers.http import ResultFetcher


@dataclass(frozen=True)
class CheckResult:
    provider: str
    ok: bool
    detail: str


async def check_providers(settings: Settings) -> list[CheckResult]:
    client = provider_client(settings)
    fetcher = SafeFetcher(FetchPolicy())  # not used: a check downloads no result
    try:
        # Storage only for OpenAI's kept answers: a check keeps none.
        live = build_live(settings, client, ResultFetcher(fetcher), build_storage(settings))
        results = []
        for name, provider in live.items():
            check = getattr(provider, "check", None)
            if check is None:
                continue
            try:
                results.append(CheckResult(name, True, await check()))
            except ProviderAuthError as exc:
                results.append(CheckResult(name, False, f"refused: {exc.message}"))
            except ProviderError as exc:
                results.append(CheckResult(name, False, f"could not tell: {exc.message}"))
        return results
    finally:
        await client.aclose()
        await fetcher.aclose()
