"""Headers of proxied requests and responses: hop-by-hop ones dropped, the platform's
credentials kept from the sandbox, `X-Forwarded-*` added, and redirects pointed back through
the proxy."""

from __future__ import annotations

from collections.abc import Iterable
from http.cookies import CookieError, SimpleCookie

from sbx_api.ports.paths import PREVIEW_PARAM

# RFC 9110 7.6.1, and the ones proxies conventionally treat as such.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# Set by the proxy itself: what a client sent under these names is not believed.
FORWARDED = frozenset(
    {
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-forwarded-prefix",
        "x-real-ip",
    }
)
# A WebSocket handshake's own headers: the proxy makes its own handshake upstream.
WEBSOCKET_HANDSHAKE = frozenset(
    {"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-accept"}
)


def _connection_listed(headers: Iterable[tuple[str, str]]) -> set[str]:
    listed: set[str] = set()
    for name, value in headers:
        if name == "connection":
            listed.update(token.strip().lower() for token in value.split(",") if token.strip())
    return listed


def _without_preview_cookie(value: str) -> str | None:
    """The Cookie header minus the platform's preview cookie (None when nothing is left)."""
    kept = []
    for part in value.split(";"):
        name = part.split("=", 1)[0].strip()
        if name and name != PREVIEW_PARAM:
            kept.append(part.strip())
    return "; ".join(kept) or None


def request_headers(
    headers: list[tuple[str, str]],
    *,
    keep_authorization: bool,
    forwarded: dict[str, str],
    drop: frozenset[str] = frozenset(),
) -> list[tuple[str, str]]:
    """What goes upstream: the client's headers but hop-by-hop ones, `Host` (set by the client
    library to the sandbox's address), the platform's credentials, and `X-Forwarded-*` of the
    client's own (replaced by ours)."""
    lowered = [(name.lower(), value) for name, value in headers]
    skip = HOP_BY_HOP | FORWARDED | drop | _connection_listed(lowered) | {"host", "content-length"}
    out: list[tuple[str, str]] = []
    for name, value in lowered:
        if name in skip or (name == "authorization" and not keep_authorization):
            continue
        if name == "cookie":
            remaining = _without_preview_cookie(value)
            if remaining is not None:
                out.append((name, remaining))
            continue
        out.append((name, value))
    out.extend((f"x-forwarded-{key}", value) for key, value in forwarded.items() if value)
    return out


def response_headers(
    headers: Iterable[tuple[bytes, bytes]], *, upstream_origin: str, prefix: str
) -> list[tuple[bytes, bytes]]:
    """What goes back to the client: the sandbox's headers but hop-by-hop ones (and any attempt
    to set the platform's preview cookie), with a redirect
    to the sandbox's own root (`Location: /login`, or its own address) rewritten under the
    proxy's prefix so that the browser stays on the proxy."""
    raw = [(name.lower(), value) for name, value in headers]
    listed = _connection_listed((n.decode("latin-1"), v.decode("latin-1")) for n, v in raw)
    out: list[tuple[bytes, bytes]] = []
    for name, value in raw:
        text = name.decode("latin-1")
        if text in HOP_BY_HOP or text in listed:
            continue
        if text == "set-cookie" and value.split(b"=", 1)[0].strip().decode("latin-1") == PREVIEW_PARAM:
            continue  # the platform's cookie is the platform's to set (no planting another link's)
        if text == "location":
            out.append(
                (name, rewrite_location(value.decode("latin-1"), upstream_origin, prefix).encode("latin-1"))
            )
            continue
        out.append((name, value))
    return out


def rewrite_location(location: str, upstream_origin: str, prefix: str) -> str:
    if location.startswith(upstream_origin + "/") or location == upstream_origin:
        location = location[len(upstream_origin) :] or "/"
    if location.startswith("/") and not location.startswith("//"):
        return prefix + location
    return location


def preview_cookie_header(token: str, *, path: str, max_age: int, secure: bool) -> str:
    """Set-Cookie of a preview: HttpOnly (no script reads it), SameSite=Lax (sent on top-level
    navigations and the page's own requests, not on other sites' subrequests), scoped to the
    sandbox's port under the proxy (`path`, or the preview host's root)."""
    jar: SimpleCookie = SimpleCookie()
    try:
        jar[PREVIEW_PARAM] = token
    except CookieError:  # pragma: no cover - tokens are base64url and dots
        raise ValueError("unsafe cookie value") from None
    morsel = jar[PREVIEW_PARAM]
    morsel["path"] = path
    morsel["max-age"] = str(max(max_age, 0))
    morsel["httponly"] = True
    morsel["samesite"] = "Lax"
    if secure:
        morsel["secure"] = True
    return morsel.OutputString()
