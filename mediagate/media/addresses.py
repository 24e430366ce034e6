"""Which addresses a user-supplied URL may reach: public unicast only.

Python 3.11.7's `is_private` / `is_global` are wrong for some ranges (CVE-2024-4032) and
do not look through IPv4-mapped IPv6, so we check explicit deny lists after unwrapping
every IPv6 form that embeds an IPv4 address.
"""

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DENIED_V4 = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, cloud metadata (169.254.169.254)
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
    )
)

# IPv6 is allowed only inside global unicast 2000::/3, minus these.
GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
DENIED_V6 = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "2001::/23",  # IETF protocol assignments (incl. Teredo 2001::/32)
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4 (checked through its embedded IPv4 first)
        "3fff::/20",  # documentation
    )
)
NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"),)
NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
V4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, 6to4, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in SIX_TO_FOUR:
        return address.sixtofour
    packed = address.packed
    if any(address in net for net in NAT64) or (address in V4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(packed[-4:])
    return None


def is_public(address: IPAddress) -> bool:
    """True only for addresses a user's URL may reach."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return False
        inner = embedded_ipv4(address)
        if inner is not None:
            return is_public(inner)
        if address in NAT64_LOCAL:
            return False
        if address not in GLOBAL_UNICAST_V6:
            return False  # ::, ::1, fc00::/7, fe80::/10, ff00::/8, 100::/64 ...
        return not any(address in net for net in DENIED_V6)
    return not any(address in net for net in DENIED_V4)


_V4_PART = re.compile(r"^(0x[0-9a-f]*|0[0-7]*|[1-9][0-9]*)$", re.IGNORECASE)


def parse_ip_literal(host: str) -> IPAddress | None:
    """An IP address written any way a resolver would accept it (`127.1`, `0x7f.1`,
    `017700000001`, `2130706433`, `[::1]`), or None for a name."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host.split("%", 1)[0] if ":" in host else host)
    except ValueError:
        pass
    if ":" in host:
        return None
    parts = host.rstrip(".").split(".")
    if not 1 <= len(parts) <= 4 or not all(_V4_PART.match(p) for p in parts):
        return None
    try:
        numbers = [_v4_number(p) for p in parts]
    except ValueError:
        return None
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        return None  # inet_aton would refuse it too; treat as a (bogus) name
    value = 0
    for n in head:
        value = value * 256 + n
    value = value * 256 ** (5 - len(numbers)) + last
    return ipaddress.IPv4Address(value)


def _v4_number(part: str) -> int:
    """One dotted part as inet_aton reads it: 0x.. hex, 0.. octal, else decimal."""
    if part[:2].lower() == "0x":
        return int(part[2:] or "0", 16)
    if part.startswith("0") and len(part) > 1:
        return int(part, 8)
    return int(part)


_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")


def host_name(host: str) -> str | None:
    """`host` as the ASCII name DNS and TLS see (IDNA, lower case, no trailing dot), or None
    when it cannot be a host name (spaces, percent signs, empty or overlong labels...)."""
    host = host.rstrip(".").lower()
    try:
        ascii_name = host.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or not all(_LABEL.match(label) for label in labels):
        return None
    return ascii_name


@dataclass(frozen=True)
class AllowList:
    """Private destinations an operator trusts; empty by default. Two kinds of entry:

    - an IP address or network (`127.0.0.2`, `10.1.0.0/16`, `fd00::/8`): those addresses
      may be reached, as a literal in a URL or as an answer for any name;
    - a host name (`images.internal`, matched exactly, no wildcards): every address that
      name resolves to may be reached, for that name only.

    A name not on the list is refused if any of its answers is neither public nor inside an
    allowed network, so a name cannot borrow an allowed address to smuggle in another."""

    names: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> "AllowList":
        """The list from its entries; ValueError naming an entry that is neither kind."""
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in entries:
            text = entry.strip().strip("[]")
            literal = parse_ip_literal(text)
            if literal is not None:
                networks.append(ipaddress.ip_network(literal))
                continue
            try:
                networks.append(ipaddress.ip_network(text))
                continue
            except ValueError:
                pass
            name = host_name(text)
            if name is None:
                raise ValueError(
                    f"fetch allow-list entry {entry!r} is neither a host name, an IP address "
                    "nor a network (CIDR, host bits zero)"
                )
            names.add(name)
        return cls(frozenset(names), tuple(networks))

    def allows(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)

    def refused(self, host: str, addresses: Sequence[IPAddress]) -> list[IPAddress]:
        """The answers for `host` that may not be reached: neither public nor allowed."""
        if host in self.names:
            return []
        return [a for a in addresses if not is_public(a) and not self.allows(a)]
