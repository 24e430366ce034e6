"""Credit packages: declared by the operator in a TOML file, checked when loaded."""

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

EXAMPLE = Path(__file__).parent / "packages.example.toml"
ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
CURRENCY_RE = re.compile(r"^[a-z]{3}$")
ZERO_DECIMAL = frozenset(
    ("bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv")
) | {"xaf", "xof", "xpf"}
"""Currencies Stripe takes in whole units (https://docs.stripe.com/currencies#zero-decimal)."""


class PackageFileError(ValueError):
    """The packages file is malformed; raised at startup, naming the file and the field."""


@dataclass(frozen=True)
class Package:
    id: str
    name: str
    credits: int
    price: int
    """In the currency's minor unit, as Stripe takes it (`unit_amount`)."""
    currency: str
    active: bool = True

    @property
    def price_text(self) -> str:
        return money(self.price, self.currency)


def money(amount: int, currency: str) -> str:
    """`12.50 USD`; whole units for zero-decimal currencies."""
    if currency.lower() in ZERO_DECIMAL:
        return f"{amount} {currency.upper()}"
    return f"{amount // 100}.{amount % 100:02d} {currency.upper()}"


def load_packages(path: Path | None) -> dict[str, Package]:
    """The packages in `path` (the built-in example when None), by id, in file order."""
    source = path or EXAMPLE
    try:
        data = tomllib.loads(source.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PackageFileError(f"{source}: {exc}") from None
    packages: dict[str, Package] = {}
    for index, raw in enumerate(data.get("packages", [])):
        package = _package(source, index, raw)
        if package.id in packages:
            raise PackageFileError(f"{source}: package id {package.id!r} appears twice")
        packages[package.id] = package
    return packages


def _package(source: Path, index: int, raw: object) -> Package:
    where = f"{source}: packages[{index}]"
    if not isinstance(raw, dict):
        raise PackageFileError(f"{where} is not a table")
    unknown = set(raw) - {"id", "name", "credits", "price", "currency", "active"}
    if unknown:
        raise PackageFileError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")

    def positive(name: str) -> int:
        value = raw.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise PackageFileError(f"{where}.{name} must be a positive whole number")
        return value

    package_id, name = raw.get("id"), raw.get("name")
    if not isinstance(package_id, str) or not ID_RE.match(package_id):
        raise PackageFileError(f"{where}.id must be 1-40 of a-z, 0-9, _ or -")
    if not isinstance(name, str) or not 0 < len(name.strip()) <= 100:
        raise PackageFileError(f"{where}.name must be 1-100 characters")
    currency = raw.get("currency")
    if not isinstance(currency, str) or not CURRENCY_RE.match(currency.lower()):
        raise PackageFileError(f"{where}.currency must be a three-letter ISO code, e.g. usd")
    active = raw.get("active", True)
    if not isinstance(active, bool):
        raise PackageFileError(f"{where}.active must be true or false")
    return Package(
        id=package_id,
        name=name.strip(),
        credits=positive("credits"),
        price=positive("price"),
        currency=currency.lower(),
        active=active,
    )
