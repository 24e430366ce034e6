"""The provider interface the runner talks to. Live adapters and the sandbox implement it."""

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from mediagate.catalog.spec import OutputKind, RouteTask


@dataclass(frozen=True)
class ProviderRequest:
    reference: str
    """Our task id: the provider's client reference where it takes one."""
    model: str
    type: str
    params: dict[str, Any]
    prepared: dict[str, Any] = field(default_factory=dict)
    """From the prepare step: `references` ([{key, width, height}], our stored copies of
    the checked images, in order) and `aspect_ratio` (what `auto` resolved to)."""
    callback_url: str | None = None
    """Where the provider may call back when done (a hint; we still poll)."""
    route: RouteTask | None = None
    """The model's declaration for this provider and type (None for the sandbox)."""
    references: tuple[str, ...] | None = None
    """The reference images as this route takes them (URL, our copy's URL, Base64), in
    order; filled in for submit only."""
    output: OutputKind = "image"
    """What the task produces (the model's endpoint): images or videos."""

    def declared(self, provider: str) -> RouteTask:
        """The route, which a live adapter cannot work without, its endpoint filled in
        with this task's params where it names some (`...-t2v-{resolution}`)."""
        if self.route is None:
            raise ValueError(f"{provider}: no route declared for {self.model} ({self.type})")
        if not self.route.endpoint_params:
            return self.route
        return replace(self.route, endpoint=self.route.endpoint_for(self.params))


@dataclass(frozen=True)
class PollResult:
    state: Literal["pending", "completed", "failed"]
    outputs: list[str] = field(default_factory=list)
    error_type: str | None = None
    error_message: str | None = None


class Provider(Protocol):
    name: str
    supports_lookup: bool
    """True when `lookup` can find a task by our reference (safe replay after a crash)."""
    sends_callbacks: bool
    """True when the provider calls the callback URL in the request once a task is done."""

    async def submit(self, request: ProviderRequest) -> str:
        """Create the upstream task; its upstream id."""
        ...

    async def lookup(self, request: ProviderRequest) -> str | None:
        """The upstream id of the task created with our reference, if any (only called
        when `supports_lookup`)."""
        ...

    async def poll(self, upstream_id: str, request: ProviderRequest) -> PollResult: ...

    async def save_result(
        self, output: str, request: ProviderRequest, dest: Path, *, max_bytes: int
    ) -> None:
        """Write one result reference returned by `poll` into the file `dest`, streamed
        (never whole in memory); over `max_bytes`, a ProviderRejected naming the cap."""
        ...


class Cancellable(Protocol):
    """A provider whose API can stop a task it has accepted (fal, Replicate, the sandbox)."""

    async def cancel(self, upstream_id: str, request: ProviderRequest, *, force: bool) -> bool:
        """Stop the upstream task. True only when the provider confirms it will produce,
        and bill, nothing more. `force` (past our deadline, the task fails either way):
        ask it to stop whatever its state; without it, ask only when a stop is certain,
        so a task that must run on is never stopped half-way."""
        ...
