"""Accepting a checked generation request: the one path every door takes (the native
`/api/v1` routes and the OpenAI-compatible `/v1` ones), so each gets the same unit of
work (slot, hold, task row, idempotency row), the same wake-ups and the same replays."""

from fastapi import Request
from sqlalchemy.exc import IntegrityError

from mediagate.catalog.validation import GenerationRequest
from mediagate.core.state import core_state
from mediagate.keys.cache import KeyCache
from mediagate.keys.service import AuthedKey, touch
from mediagate.providers.registry import ProviderRegistry
from mediagate.runner.wakeups import Wakeups
from mediagate.tasks import service
from mediagate.tasks.idempotency import InFlightKeys


def check_routable(request: Request, generation: GenerationRequest, caller: AuthedKey) -> None:
    """503 (no provider) or 400 (none can honour these params) before any hold."""
    registry: ProviderRegistry = request.app.state.providers
    registry.routes(generation.model, generation.type, caller.mode, generation.params)


async def accept(
    request: Request,
    caller: AuthedKey,
    generation: GenerationRequest,
    *,
    idempotency_key: str | None = None,
    fingerprint: str | None = None,
) -> service.Submission:
    core = core_state(request)
    in_flight: InFlightKeys = request.app.state.idempotency
    key_cache: KeyCache = request.app.state.key_cache

    async def submit() -> service.Submission:
        async with core.db.write() as session:
            # The key's last use first: the account row the submit locks is then locked
            # by the unit's last statement, until the COMMIT right after it.
            if key_cache.due_for_touch(caller.id):
                await touch(session, caller.id)
            return await service.submit_generation(
                session,
                caller=caller,
                request=generation,
                max_in_flight=core.settings.max_in_flight_per_account,
                idempotency_key=idempotency_key,
                fingerprint=fingerprint,
            )

    with in_flight.claim(caller.account_id, idempotency_key):
        try:
            submission = await submit()
        except IntegrityError:
            if idempotency_key is None:
                raise
            # Another replica committed the same Idempotency-Key first: our unit rolled
            # back (no task, no hold); answer as a replay of theirs.
            submission = await submit()
    if not submission.replayed:  # after the commit: runners see the task when woken
        wakeups: Wakeups = request.app.state.wakeups
        await wakeups.announce()
    return submission
