"""Preview hosts: each sandbox port on a host name of its own (`SBX_PREVIEW_URL`, e.g.
`https://{port}-{id}.preview.example.com`, with a wildcard DNS name and certificate).

A preview served on the API's own origin shares that origin with the API and the dashboard: a
page of the sandbox could read what the dashboard keeps in the browser. On a host of its own,
each sandbox port is its own origin (the browser keeps its cookies, storage and scripts apart),
and an app's root-relative links (`/static/app.js`) work as they do on the app's own server.

A request whose `Host` matches the template never reaches the API's routes: the middleware
hands it to the proxy, with the path rewritten to `/sandboxes/<id>/ports/<port>/...` for the
proxy's own checks (and the public prefix empty, so redirects and the cookie stay at the host's
root).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from sbx_common.errors import PlatformError, Unavailable
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from sbx_api.exception_handlers import DEPENDENCY_ERRORS, render

PREVIEW_HOST_STATE = "preview_host"


@dataclass(frozen=True)
class PreviewHosts:
    scheme: str
    netloc: str  # with the `{id}` and `{port}` placeholders
    pattern: re.Pattern[str]

    def base_url(self, sandbox_id: str, port: int) -> str:
        return f"{self.scheme}://{self.netloc.replace('{id}', sandbox_id).replace('{port}', str(port))}"

    def match(self, host: str) -> tuple[str, str] | None:
        found = self.pattern.match(host)
        return (found["id"].lower(), found["port"]) if found else None


@functools.lru_cache(maxsize=4)
def parse_template(template: str) -> PreviewHosts | None:
    """The preview hosts of `SBX_PREVIEW_URL`, None when it is empty; ValueError when it is not a
    `http(s)://` URL with `{id}` and `{port}` in its host and nothing after it."""
    template = template.strip().rstrip("/")
    if not template:
        return None
    parts = urlsplit(template)
    netloc = parts.netloc.lower()
    if parts.scheme not in ("http", "https") or "{id}" not in netloc or "{port}" not in netloc or parts.path:
        raise ValueError("SBX_PREVIEW_URL must look like https://{port}-{id}.preview.example.com")
    regex = (
        re.escape(netloc)
        .replace(r"\{id\}", "(?P<id>[0-9a-f-]{36})")
        .replace(r"\{port\}", "(?P<port>[0-9]{1,5})")
    )
    return PreviewHosts(parts.scheme, netloc, re.compile(f"^{regex}$", re.IGNORECASE))


def public_prefix(scope: Scope, prefix: str) -> str:
    """The path under which the browser sees the sandbox's root: the proxy's prefix, or nothing
    on a preview host."""
    return "" if scope.get("state", {}).get(PREVIEW_HOST_STATE) else prefix


class _Route:
    """What the request metrics and logs name a preview host's requests by."""

    path = "/(preview host)"


class PreviewHostMiddleware:
    def __init__(self, app: ASGIApp, template: str) -> None:
        self.app = app
        self.hosts = parse_template(template)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
        found = (
            self.hosts.match(host)
            if self.hosts is not None and scope["type"] in ("http", "websocket")
            else None
        )
        if found is None:
            await self.app(scope, receive, send)
            return
        from sbx_api.ports import router, websocket  # the routes import this module's helpers

        sandbox_id, port = found
        prefix = f"/sandboxes/{sandbox_id}/ports/{port}"
        raw = scope.get("raw_path") or scope["path"].encode()
        scope = {
            **scope,
            "path": prefix + scope["path"],
            "raw_path": prefix.encode() + raw,
            "route": _Route(),
        }
        scope.setdefault("state", {})[PREVIEW_HOST_STATE] = True
        state = scope["app"].state.sbx
        if scope["type"] == "websocket":
            await websocket.serve(WebSocket(scope, receive, send), state, sandbox_id, port)
            return
        try:
            response = await router.proxy_request(Request(scope, receive), state, sandbox_id, port)
        except PlatformError as exc:
            response = render(exc)
        except DEPENDENCY_ERRORS:
            response = render(Unavailable())
        await response(scope, receive, send)
