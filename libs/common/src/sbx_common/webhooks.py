"""What the API and the webhooks service agree on about webhooks: the event names a webhook may
ask for, which targets are refused, how a secret is sealed and how a delivery is signed."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import secrets as _secrets
import socket
import uuid
from urllib.parse import urlsplit, urlunsplit

from sbx_common.status import Status

ALL_EVENTS = "sandbox.*"
EVENT_TYPES = frozenset({ALL_EVENTS, *(f"sandbox.{s.value}" for s in Status)})
SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)


class RefusedTarget(ValueError):
    """The URL is not one the platform delivers to. The message names no secret."""


def new_secret() -> str:
    return SECRET_PREFIX + _secrets.token_urlsafe(32)


def secret_binding(webhook_id: uuid.UUID | str) -> bytes:
    """Associated data of a sealed webhook secret: it only decrypts for its own webhook."""
    return f"sbx-webhook-secret:v1:{webhook_id}".encode()


def matches(subscribed: list[str], event_type: str) -> bool:
    return ALL_EVENTS in subscribed or event_type in subscribed


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`, the `Sbx-Signature` header."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def check_url_shape(url: str) -> tuple[str, int]:
    """The host and port of an http(s) URL without credentials; RefusedTarget otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RefusedTarget("The URL is not valid.") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedTarget("The URL must be http:// or https:// with a host.")
    if parts.username is not None or parts.password is not None:
        raise RefusedTarget("The URL must not carry credentials.")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def is_refused_address(address: str) -> bool:
    """Loopback, private, link-local, multicast, reserved or unspecified: never a webhook target."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


async def check_target(url: str, *, allow_private: bool, resolve_timeout: float = 5.0) -> list[str]:
    """Refuse `url` unless it is http(s) and every address its host resolves to is public
    (`allow_private` lifts the address check). Called at creation and again before every
    delivery, so a name that later resolves to an inner address is refused then. Returns the
    checked addresses (none when `allow_private`), for `pinned` to connect to."""
    host, port = check_url_shape(url)
    if allow_private:
        return []
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout=resolve_timeout
        )
    except (OSError, TimeoutError, ValueError) as exc:  # ValueError: a name IDNA cannot encode
        raise RefusedTarget("The URL's host does not resolve.") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses or any(is_refused_address(a) for a in addresses):
        raise RefusedTarget("The URL points at a loopback, private or link-local address.")
    return addresses


def pinned(url: str, address: str) -> tuple[str, str, dict[str, str]]:
    """`url` with its host replaced by `address` (one the check passed), the `Host` header to
    send, and the TLS server name: the connection goes where the check looked, whatever the
    name resolves to a moment later, and HTTPS still verifies the certificate for the name."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{address}]" if ":" in address else address
    if parts.port is not None:
        netloc += f":{parts.port}"
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    return urlunsplit(parts._replace(netloc=netloc)), parts.netloc, extensions
