"""Per-key limits: which models a key may use, from which client addresses, and how
many credits it may spend per UTC day, per month and in total.

Checked on every request from the cached key (no query): the model and address in
memory; the spending caps in the submit's own transaction (keys/spending.py), so 100
concurrent submits against a cap of 10 tasks' worth accept exactly 10.
"""

import ipaddress
from dataclasses import dataclass
from typing import Any

from mediagate.core.errors import Forbidden, InvalidRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
PERIODS = ("day", "month", "total")


@dataclass(frozen=True)
class KeyLimits:
    models: tuple[str, ...] | None = None
    """The only models this key may use (None: all)."""
    networks: tuple[Network, ...] | None = None
    """The client address ranges it may be used from (None: anywhere)."""
    caps: tuple[tuple[str, int], ...] = ()
    """(period, credits) for each spending cap set: day, month, total."""

    @property
    def unlimited(self) -> bool:
        return self.models is None and self.networks is None and not self.caps

    def check_model(self, model: str) -> None:
        if self.models is not None and model not in self.models:
            raise Forbidden(
                f"This API key may not use model {model!r} (it is limited to: "
                f"{', '.join(self.models)})",
                param="model",
            )

    def check_address(self, host: str | None) -> None:
        if self.networks is None:
            return
        try:
            address = ipaddress.ip_address(host or "")
        except ValueError:
            address = None
        if address is None or not any(address in n for n in self.networks):
            raise Forbidden(
                f"This API key may not be used from {host or 'an unknown address'} (it is "
                f"limited to: {', '.join(map(str, self.networks))})"
            )

    def as_columns(self) -> dict[str, Any]:
        caps = dict(self.caps)
        return {
            "allowed_models": list(self.models) if self.models is not None else None,
            "allowed_networks": [str(n) for n in self.networks] if self.networks else None,
            "cap_day": caps.get("day"),
            "cap_month": caps.get("month"),
            "cap_total": caps.get("total"),
        }


def from_columns(
    models: list[str] | None,
    networks: list[str] | None,
    day: int | None,
    month: int | None,
    total: int | None,
) -> KeyLimits | None:
    """The limits stored on a key row (None when it has none)."""
    caps = tuple((p, c) for p, c in zip(PERIODS, (day, month, total), strict=True) if c)
    limits = KeyLimits(
        models=tuple(models) if models is not None else None,
        networks=tuple(ipaddress.ip_network(n) for n in networks) if networks else None,
        caps=caps,
    )
    return None if limits.unlimited else limits


def parse_limits(
    *,
    models: str = "",
    networks: str = "",
    day: str = "",
    month: str = "",
    total: str = "",
    known_models: tuple[str, ...],
) -> KeyLimits:
    """Limits as a person types them (comma or whitespace separated lists, blank for no
    limit), with an error naming the field that is wrong."""
    chosen = tuple(m for m in models.replace(",", " ").split() if m)
    unknown = [m for m in chosen if m not in known_models]
    if unknown:
        raise InvalidRequest(f"Unknown model {unknown[0]!r}", param="models")
    ranges = []
    for entry in networks.replace(",", " ").split():
        try:
            ranges.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise InvalidRequest(
                f"{entry!r} is not an IP address or range (e.g. 203.0.113.0/24)",
                param="networks",
            ) from None
    caps = []
    for period, raw in zip(PERIODS, (day, month, total), strict=True):
        raw = raw.strip()
        if not raw:
            continue
        if not raw.isdigit() or int(raw) <= 0:
            raise InvalidRequest(
                f"The {period} spending cap must be a whole number of credits above 0",
                param=f"cap_{period}",
            )
        caps.append((period, int(raw)))
    return KeyLimits(chosen or None, tuple(ranges) or None, tuple(caps))


def describe_limits(limits: KeyLimits | None) -> str:
    """The limits in one line, for the CLI and the keys page."""
    if limits is None or limits.unlimited:
        return "no limits"
    parts = []
    if limits.models is not None:
        parts.append("models " + ", ".join(limits.models))
    if limits.networks is not None:
        parts.append("from " + ", ".join(map(str, limits.networks)))
    parts.extend(
        f"{c} credits per {p}" if p != "total" else f"{c} credits in total" for p, c in limits.caps
    )
    return "; ".join(parts)
