"""A sandbox's network policy: what it may reach besides the replies to its published ports.

`{egress: "internet" | "none" | "allowlist", allow: [CIDR | hostname]}`. The API validates it
(`check_allow_entry`, `MAX_ALLOW`) and stores it on the environment version and the sandbox; the
orchestrator reads it back (`NetworkPolicy.from_json`) and turns it into firewall rules. Whatever
the egress, the always-denied ranges (`ALWAYS_DENIED`, and the operator's `SBX_EGRESS_DENY`) win.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

MAX_ALLOW = 64
MAX_HOSTNAME_CHARS = 253

# Link-local (the cloud metadata address among them), loopback, "this network", the private
# ranges where the host, the platform's services and other sandboxes live, shared address space
# (carrier-grade NAT, also used inside some clouds), multicast and the reserved block.
ALWAYS_DENIED = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "224.0.0.0/4",
    "240.0.0.0/4",
)

_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*\.?$")


class Egress(StrEnum):
    INTERNET = "internet"
    NONE = "none"
    ALLOWLIST = "allowlist"


def parse_cidr(value: str) -> ipaddress.IPv4Network | None:
    """An IPv4 address or CIDR (host bits must be zero), else None."""
    if not re.fullmatch(r"[0-9./]+", value):
        return None
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError:
        return None


def is_hostname(value: str) -> bool:
    """A DNS name (letters, digits, hyphens; at least one letter so it is not a mangled address)."""
    return (
        len(value) <= MAX_HOSTNAME_CHARS and bool(_HOSTNAME.match(value)) and any(c.isalpha() for c in value)
    )


def check_allow_entry(value: str) -> str:
    """One `allow` entry: an IPv4 CIDR or address, or a hostname; normalised (lower case)."""
    cidr = parse_cidr(value)
    if cidr is not None:
        return str(cidr)
    if is_hostname(value):
        return value.lower().rstrip(".")
    raise ValueError("Each entry must be an IPv4 CIDR (such as 203.0.113.0/24) or a hostname.")


@dataclass(frozen=True)
class NetworkPolicy:
    egress: Egress = Egress.INTERNET
    allow: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def from_json(cls, raw: dict[str, Any] | None) -> NetworkPolicy:
        """The stored form; anything unreadable is the strictest policy (`none`)."""
        if not raw:
            return cls()
        try:
            egress = Egress(raw.get("egress", Egress.INTERNET))
            allow = tuple(check_allow_entry(str(entry)) for entry in raw.get("allow") or [])
        except ValueError:
            return cls(Egress.NONE)
        return cls(egress, allow)

    def to_json(self) -> dict[str, Any]:
        return {"egress": self.egress.value, "allow": list(self.allow)}

    @property
    def cidrs(self) -> list[str]:
        return [entry for entry in self.allow if parse_cidr(entry) is not None]

    @property
    def hostnames(self) -> list[str]:
        return [entry for entry in self.allow if parse_cidr(entry) is None]
