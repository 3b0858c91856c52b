"""The request line of a proxied request, read from its raw bytes.

Routing works on the decoded path, where `%2F` is a `/`: a raw path could then name one sandbox
to the router and another to the proxy. So the sandbox id and port are read again from the raw
path, split on real slashes only, and must be exactly what the router matched (no escapes);
the rest of the raw path goes upstream byte for byte, and dot segments (`.`, `..`, escaped or
not) are refused rather than passed on. Whatever the path says, the connection only ever goes
to the recorded address of that sandbox and that port (see `proxy`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from sbx_common.errors import ValidationFailed

PREVIEW_PARAM = "sbx_preview"  # the preview token on a first visit (query) and its cookie name
TOKEN_PARAM = "token"  # noqa: S105 - a parameter name; a platform credential on WebSocket handshakes (`?token=`)
PORT_MIN, PORT_MAX = 1, 65535

# A proxied path; `POST .../preview-url` is the API's own route.
_PROXY_PATH = re.compile(r"^/sandboxes/[^/]+/ports/[^/]+(?:/.*)?$")
_PREVIEW_URL_PATH = re.compile(r"^/sandboxes/[^/]+/ports/[^/]+/preview-url$")


def is_proxy_request(method: str, path: str) -> bool:
    """Whether a request goes to a sandbox's port (its body is streamed, not limited, and it is
    counted by the proxy's own rate limit)."""
    if not _PROXY_PATH.match(path):
        return False
    return not (method == "POST" and _PREVIEW_URL_PATH.match(path))


def parse_port(raw: str) -> int:
    if not raw.isdigit() or len(raw) > 5 or not PORT_MIN <= int(raw) <= PORT_MAX:
        raise ValidationFailed.for_field("port", f"Must be a port number from {PORT_MIN} to {PORT_MAX}.")
    return int(raw)


@dataclass(frozen=True)
class UpstreamPath:
    prefix: str  # /sandboxes/<id>/ports/<port>
    path: bytes  # the raw path to send upstream, starting with "/"


def upstream_path(raw_path: bytes, sandbox_id: str, port: str) -> UpstreamPath:
    """Split the raw request path into the proxy's prefix and the path sent to the sandbox."""
    parts = raw_path.split(b"/", 5)
    if (
        len(parts) < 5
        or parts[0] != b""
        or parts[1] != b"sandboxes"
        or parts[2] != sandbox_id.encode()
        or parts[3] != b"ports"
        or parts[4] != port.encode()
    ):
        raise ValidationFailed("The sandbox and port must be written plainly in the path.")
    rest = b"/" + parts[5] if len(parts) == 6 else b"/"
    for segment in rest.split(b"/"):
        if unquote_to_bytes(segment) in (b".", b".."):
            raise ValidationFailed("The path must not contain '.' or '..' segments.")
    return UpstreamPath(prefix=f"/sandboxes/{sandbox_id}/ports/{port}", path=rest)


def without_params(query: bytes, names: set[str]) -> bytes:
    """The raw query string without the parameters named (the platform's credentials)."""
    if not query or not names:
        return query
    kept = []
    for pair in query.split(b"&"):
        name = unquote_to_bytes(pair.split(b"=", 1)[0].replace(b"+", b" ")).decode("latin-1")
        if name not in names:
            kept.append(pair)
    return b"&".join(kept)


def query_param(query: bytes, name: str) -> str | None:
    for pair in query.split(b"&"):
        key, _, value = pair.partition(b"=")
        if unquote_to_bytes(key.replace(b"+", b" ")).decode("latin-1") == name:
            return unquote_to_bytes(value.replace(b"+", b" ")).decode("latin-1")
    return None
