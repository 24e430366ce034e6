"""Build the provider registry from settings: the sandbox always, each live provider only
when its credentials are set."""

import httpx2

from mediagate.core.db import Database
from mediagate.core.settings import Settings
from mediagate.media.fetcher import SafeFetcher
from mediagate.media.storage import Storage
from mediagate.providers.base import Provider
from mediagate.providers.fal import FalProvider
from mediagate.providers.http import ProviderHTTP, ResultFetcher
from mediagate.providers.kling import KlingProvider, KlingToken
from mediagate.providers.openai_images import OpenAIImagesProvider
from mediagate.providers.registry import ProviderRegistry
from mediagate.providers.render_pool import RenderPool
from mediagate.providers.replicate import ReplicateProvider
from mediagate.providers.sandbox import SandboxProvider
from mediagate.providers.wavespeed import WaveSpeedProvider

ALL_LIVE = ("wavespeed", "kling", "fal", "replicate", "openai")


def configured_names(settings: Settings) -> list[str]:
    """The live providers whose credentials are set."""
    present = {
        "wavespeed": bool(settings.wavespeed_api_key),
        "kling": bool(settings.kling_access_key and settings.kling_secret_key),
        "fal": bool(settings.fal_key),
        "replicate": bool(settings.replicate_api_token),
        "openai": bool(settings.openai_api_key),
    }
    return [name for name in ALL_LIVE if present[name]]


def provider_client(settings: Settings) -> ProviderHTTP:
    """One pooled client for every provider API call."""
    return ProviderHTTP(
        timeout_s=settings.provider_timeout_s, connections=settings.runner_concurrency
    )


def keep_alive_pool(size: int) -> httpx2.Limits:
    """As many kept-alive connections as steps may run at once: with httpx2's default of
    20, a busy runner opened and closed a connection for most downloads."""
    return httpx2.Limits(max_connections=size, max_keepalive_connections=size)


def build_live(
    settings: Settings, client: ProviderHTTP, results: ResultFetcher, storage: Storage
) -> dict[str, Provider]:
    """An adapter for each live provider whose credentials are set."""
    names = configured_names(settings)
    live: dict[str, Provider] = {}
    if "wavespeed" in names:
        live["wavespeed"] = WaveSpeedProvider(
            client,
            results,
            api_key=settings.wavespeed_api_key or "",
            base_url=settings.wavespeed_base_url,
            flagged_outputs=settings.provider_flagged_outputs,
        )
    if "kling" in names:
        token = KlingToken(settings.kling_access_key or "", settings.kling_secret_key or "")
        live["kling"] = KlingProvider(
            client, results, token=token, base_url=settings.kling_base_url
        )
    if "fal" in names:
        live["fal"] = FalProvider(
            client,
            results,
            api_key=settings.fal_key or "",
            base_url=settings.fal_base_url,
            platform_url=settings.fal_platform_url,
            flagged_outputs=settings.provider_flagged_outputs,
        )
    if "replicate" in names:
        live["replicate"] = ReplicateProvider(
            client,
            results,
            api_token=settings.replicate_api_token or "",
            base_url=settings.replicate_base_url,
            flagged_outputs=settings.provider_flagged_outputs,
        )
    if "openai" in names:
        # Synchronous: its answer is kept in `storage` at once (providers/openai_images.py).
        live["openai"] = OpenAIImagesProvider(
            client,
            storage,
            api_key=settings.openai_api_key or "",
            base_url=settings.openai_base_url,
            secret=settings.hmac_secret,
            timeout_s=settings.openai_timeout_s,
        )
    return live


def build_registry(
    db: Database,
    settings: Settings,
    storage: Storage,
    fetcher: SafeFetcher,
    client: ProviderHTTP,
) -> ProviderRegistry:
    sandbox = SandboxProvider(
        db,
        storage,
        pool=RenderPool(settings.sandbox_render_threads),
        latency_s=settings.sandbox_latency_s,
        call_delay_s=settings.sandbox_call_delay_s,
    )
    live = build_live(
        settings,
        client,
        ResultFetcher(fetcher, deadline_s=settings.result_download_timeout_s),
        storage,
    )
    return ProviderRegistry(
        sandbox,
        live,
        breaker_threshold=settings.breaker_threshold,
        breaker_cooldown_s=settings.breaker_cooldown_s,
        max_active={"wavespeed": settings.wavespeed_max_concurrency},
    )
