"""Which registries an image reference may name: none on loopback, link-local or private hosts.

An image is pulled by the Docker engine on the platform's own network, so a reference such as
`127.0.0.1:5000/x` or `169.254.169.254/x` would make the engine send requests to hosts a user must
never reach. The registry is the reference's first path component when that contains `.` or `:`
or is `localhost` (Docker's own rule); references without one (`alpine:3.20`, a local
`sbx-test-busybox`) name Docker Hub or a local image and stay allowed. Refused: IP literals that
are loopback, private, link-local, unspecified, reserved or multicast; `localhost` and names under
`.localhost`; single-label names (`registry:5000`: a name only an internal resolver knows); and
names under the special-use suffixes below. Operators allow such registries by name in
`SBX_ALLOWED_REGISTRIES`. A public name that resolves to a private address is not caught here
(the engine resolves it): operators who fear that firewall the engine's host.
"""

from __future__ import annotations

import ipaddress

INTERNAL_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa", ".intranet", ".corp")


def registry_of(image: str) -> str | None:
    """The registry part of an image reference (`host[:port]`), None for Docker Hub or a local image."""
    first, slash, _ = image.partition("/")
    if not slash:
        return None
    if "." in first or ":" in first or first == "localhost":
        return first
    return None


def host_of(registry: str) -> str:
    """The registry's host without its port (and without IPv6 brackets), lower case."""
    registry = registry.lower()
    if registry.startswith("["):
        return registry[1:].partition("]")[0]
    host, colon, port = registry.rpartition(":")
    return host if colon and port.isdigit() else registry


def is_internal(host: str) -> bool:
    """Whether a registry host is on loopback, link-local or a private network (or looks local)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost" or "." not in host or host.endswith(INTERNAL_SUFFIXES)
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_unspecified
        or address.is_reserved
        or address.is_multicast
    )


def parse_allowed(setting: str) -> frozenset[str]:
    return frozenset(part.strip().lower() for part in setting.split(",") if part.strip())


def refused_registry(image: str, allowed: frozenset[str]) -> str | None:
    """The registry of `image` if it is internal and not allowed by the operator, else None."""
    registry = registry_of(image)
    if registry is None:
        return None
    host = host_of(registry)
    if not is_internal(host) or registry.lower() in allowed or host in allowed:
        return None
    return registry
