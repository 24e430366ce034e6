"""Upstream completion callbacks. A callback is only a hint: it makes the task's next poll
due now, and the runner then asks the provider itself before trusting anything.

The URL we hand a provider carries our task id and an HMAC of it, so nobody else can
hurry (or probe) tasks through this route.
"""

import hashlib
import hmac

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from mediagate.core.errors import NotFound
from mediagate.core.settings import Settings
from mediagate.core.state import core_state
from mediagate.tasks import service as tasks

router = APIRouter(prefix="/api/v1/providers", tags=["providers"], include_in_schema=False)


def signature(secret: bytes, provider: str, task_id: str) -> str:
    return hmac.new(secret, f"callback:{provider}:{task_id}".encode(), hashlib.sha256).hexdigest()[
        :32
    ]


def callback_url(settings: Settings, provider: str, task_id: str) -> str | None:
    """Where `provider` should call back for `task_id`; None without a public base URL
    (a provider cannot reach us then, and polling does the work)."""
    if not settings.public_base_url:
        return None
    sig = signature(settings.hmac_secret, provider, task_id)
    base = settings.public_base_url.rstrip("/")
    return f"{base}/api/v1/providers/{provider}/callback?task={task_id}&sig={sig}"


@router.post("/{provider}/callback")
async def provider_callback(
    request: Request, provider: str, task: str = "", sig: str = ""
) -> JSONResponse:
    core = core_state(request)
    expected = signature(core.settings.hmac_secret, provider, task)
    if not task or not hmac.compare_digest(expected, sig):
        raise NotFound("Unknown callback")
    async with core.db.write() as session:
        hurried = await tasks.poll_now(session, task)
    if hurried:
        await request.app.state.wakeups.announce()
    return JSONResponse({"received": True})
