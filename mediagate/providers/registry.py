"""Which provider serves a task: the sandbox for test keys, the model's configured routes
(in order of preference) for live keys."""

import asyncio
from collections.abc import Mapping
from typing import Any

from mediagate.catalog.spec import ModelSpec
from mediagate.core.errors import InvalidRequest, ProviderUnavailable
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
        max_active: Mapping[str, int] | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.live = dict(live)
        self.max_active = {name: n for name, n in (max_active or {}).items() if n > 0}
        """Providers that take only so many tasks at once from one account."""
        self.admission = {name: asyncio.Lock() for name in self.max_active}
        """Held from counting a provider's tasks to recording ours, within this process."""
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

    def routes(
        self, model: ModelSpec, type_name: str, mode: str, params: dict[str, Any] | None = None
    ) -> list[str]:
        """Provider names for a task, best first; ProviderUnavailable when there is none,
        InvalidRequest (naming the param) when the configured ones cannot honour `params`."""
        if mode == "test":
            return [self.sandbox.name]
        names = [p for p in model.routes_for(type_name) if p in self.live]
        if not names:
            declared = ", ".join(model.routes_for(type_name)) or "none"
            raise ProviderUnavailable(
                f"No provider is configured for {model.id} ({type_name}); the operator can "
                f"configure one of: {declared}. Test keys (aio_test_) use the sandbox."
            )
        if params is None:
            return names
        declared_params = model.task_type(type_name).params
        problems: dict[str, tuple[str, str]] = {}
        for name in names:
            route = model.route(name, type_name)
            problem = route.eligible(params, declared_params) if route else None
            if problem is not None:
                problems[name] = problem
        able = [n for n in names if n not in problems]
        if not able:
            param = next(iter(problems.values()))[0]
            why = "; ".join(f"{n} {p[1]}" for n, p in problems.items())
            raise InvalidRequest(
                f"No provider configured for {model.id} ({type_name}) can serve this request "
                f"as given: {why}",
                param=param,
            )
        return able
