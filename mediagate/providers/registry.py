"""Which provider serves a task: the sandbox for test keys, the model's configured routes
(in order of preference) for live keys."""

from collections.abc import Mapping

from mediagate.catalog.spec import ModelSpec
from mediagate.core.errors import ProviderUnavailable
from mediagate.providers.base import Provider
from mediagate.providers.breaker import Breaker


class ProviderRegistry:
    def __init__(
        self,
        sandbox: Provider,
        live: Mapping[str, Provider],
        *,
        breaker_threshold: int = 3,
        breaker_cooldown_s: float = 30.0,
    ) -> None:
        self.sandbox = sandbox
        self.live = dict(live)
        self.breakers = {
            name: Breaker(threshold=breaker_threshold, cooldown_s=breaker_cooldown_s)
            for name in (sandbox.name, *self.live)
        }

    def breaker(self, name: str) -> Breaker:
        return self.breakers[name]

    def get(self, name: str) -> Provider:
        if name == self.sandbox.name:
            return self.sandbox
        return self.live[name]

    def routes(self, model: ModelSpec, type_name: str, mode: str) -> list[str]:
        """Provider names for a task, best first; ProviderUnavailable when there is none."""
        if mode == "test":
            return [self.sandbox.name]
        names = [p for p in model.routes_for(type_name) if p in self.live]
        if not names:
            declared = ", ".join(model.routes_for(type_name)) or "none"
            raise ProviderUnavailable(
                f"No provider is configured for {model.id} ({type_name}); the operator can "
                f"configure one of: {declared}. Test keys (aio_test_) use the sandbox."
            )
        return names
