"""Prices as declared rules: what a task costs, computed from its params.

A type's `price` in a model file takes one of three forms:

    price = 6                                              # credits per request
    price = { credits = 3, per = "num_images", unit = "image" }   # x an integer param
    price = { credits = { "720p" = 4, "1080p" = 8 }, by = ["resolution"],
              per = "duration", unit = "second" }          # a table, optionally x a param

A table is keyed by the values of its `by` params joined with "/" (booleans spelled
`true`/`false`), and must name every combination those params allow. The quote is
rounded up to a whole credit; it is the hold, and what a completed task is charged.
"""

import itertools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from mediagate.catalog.spec import ParamSpec

Unit = Literal["request", "image", "second"]
UNITS: tuple[Unit, ...] = ("request", "image", "second")
RULE_KEYS = {"credits", "per", "by", "unit"}


@dataclass(frozen=True)
class PriceRule:
    credits: float = 0
    """Credits per unit when there is no table."""
    table: dict[str, float] = field(default_factory=dict)
    """Credits per unit by the values of `by` ("1080p/true")."""
    by: tuple[str, ...] = ()
    per: str | None = None
    """The numeric param the credits are multiplied by (num_images, duration)."""
    unit: Unit = "request"

    @property
    def fixed(self) -> bool:
        return not self.table and self.per is None

    def quote(self, params: dict[str, Any]) -> int:
        """The credits a task with these (validated, defaulted) params costs."""
        rate = self.table[table_key(params.get(p) for p in self.by)] if self.table else self.credits
        count = params.get(self.per, 1) if self.per else 1
        return math.ceil(rate * count - 1e-9)

    def quote_defaults(self, params: "dict[str, ParamSpec]") -> int:
        """The price of a task that sets none of the params the rule reads (each at its
        default, else its first allowed value, else its minimum)."""
        return self.quote(
            {name: _first_value(params[name]) for name in (*self.by, self.per) if name}
        )

    def rows(self) -> list[tuple[str, float]]:
        """(condition, credits per unit) for a price table; one row without a table."""
        if not self.table:
            return [("", self.credits)]
        return list(self.table.items())

    def text(self) -> str:
        """The rule in words, as the model page and the CLI show it."""
        if not self.table:
            return self.rate_text(self.credits)
        return "; ".join(f"{key}: {self.rate_text(c)}" for key, c in self.table.items())

    def rate_text(self, credits: float) -> str:
        """ "6 credits per request", "1 credit per image", "0.5 credits per second"."""
        noun = "credit" if credits == 1 else "credits"
        return f"{_number(credits)} {noun} per {self.unit}"

    def as_data(self) -> dict[str, Any]:
        """The rule for /api/v1/models: enough for a client to compute any quote."""
        return {
            "unit": self.unit,
            "per": self.per,
            "by": list(self.by),
            "credits": None if self.table else self.credits,
            "table": dict(self.table) or None,
            "text": self.text(),
        }


def _first_value(spec: "ParamSpec") -> Any:
    if spec.default is not None:
        return spec.default
    if spec.enum:
        return spec.enum[0]
    if spec.type == "boolean":
        return False
    return spec.minimum if spec.minimum is not None else 1


def table_key(values: Any) -> str:
    return "/".join(_spelled(v) for v in values)


def _spelled(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def parse_price(raw: Any, params: "dict[str, ParamSpec]", where: str) -> PriceRule:
    """A rule from a model file, checked against the type's params."""
    if isinstance(raw, bool):
        raise ValueError(f"{where}: price must be a number or a rule table")
    if isinstance(raw, int | float):
        return PriceRule(credits=_positive(raw, where))
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: price must be a number or a rule table")
    unknown = set(raw) - RULE_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown price keys {sorted(unknown)}")
    unit = raw.get("unit", "request")
    if unit not in UNITS:
        raise ValueError(f"{where}: price unit must be one of {', '.join(UNITS)}")
    per = raw.get("per")
    if per is not None:
        spec = params.get(per)
        if spec is None or spec.type not in ("integer", "number"):
            raise ValueError(f"{where}: price per {per!r} is not a numeric param")
        if not spec.required and spec.default is None:
            raise ValueError(f"{where}: price per {per!r} needs a default or a required param")
    by = raw.get("by", [])
    by = (by,) if isinstance(by, str) else tuple(by)
    credits = raw.get("credits")
    if isinstance(credits, dict):
        if not by:
            raise ValueError(f"{where}: a price table needs `by`")
        table = {str(k): _positive(v, f"{where} [{k}]") for k, v in credits.items()}
        _check_table(table, by, params, where)
        return PriceRule(table=table, by=by, per=per, unit=unit)
    if by:
        raise ValueError(f"{where}: `by` needs a table of credits")
    if per is None:
        raise ValueError(f"{where}: a price rule needs `per` or a table")
    return PriceRule(credits=_positive(credits, where), per=per, unit=unit)


def _positive(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"{where}: price credits must be a positive number")
    return value


def _check_table(
    table: dict[str, float], by: tuple[str, ...], params: "dict[str, ParamSpec]", where: str
) -> None:
    choices: list[list[str]] = []
    for name in by:
        spec = params.get(name)
        if spec is None:
            raise ValueError(f"{where}: price by {name!r}, which is not a param")
        if spec.type == "boolean":
            choices.append(["true", "false"])
        elif spec.enum:
            choices.append([_spelled(v) for v in spec.enum])
        else:
            raise ValueError(f"{where}: price by {name!r} needs an enum or boolean param")
    wanted = {"/".join(combo) for combo in itertools.product(*choices)}
    missing = sorted(wanted - set(table))
    if missing:
        raise ValueError(f"{where}: price table has no entry for {', '.join(missing)}")
    extra = sorted(set(table) - wanted)
    if extra:
        raise ValueError(f"{where}: price table entries match no param values: {extra}")
