"""Routes of the ports domain: the proxy to a sandbox's ports (every HTTP method, and WebSocket
upgrades, at `/sandboxes/:id/ports/:port/<path>`) and `POST .../preview-url`."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, WebSocket
from sbx_common.errors import Unauthorized
from starlette.responses import RedirectResponse, Response

from sbx_api import ratelimit
from sbx_api.deps import CurrentUser, State, parse_id
from sbx_api.ports import proxy, websocket
from sbx_api.ports.access import resolve
from sbx_api.ports.headers import preview_cookie_header
from sbx_api.ports.hosts import public_prefix
from sbx_api.ports.paths import PREVIEW_PARAM, parse_port, upstream_path, without_params
from sbx_api.ports.schemas import PreviewUrlOut, PreviewUrlRequest
from sbx_api.ports.service import create_preview_url
from sbx_api.responses import ok
from sbx_api.schemas import Envelope
from sbx_api.state import AppState

router = APIRouter(tags=["ports"])

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
PROXY_PATH = "/sandboxes/{sandbox_id}/ports/{port}/{path:path}"
PROXY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Whatever the sandbox's server answers (any status, headers and body), streamed."},
    303: {
        "description": "A preview link's first visit: sets the preview cookie, redirects to the clean URL."
    },
    400: {"description": "VALIDATION_ERROR: a port outside 1-65535, `.`/`..` or an escaped id in the path."},
    401: {
        "description": "UNAUTHORIZED: no credential, or a preview link that is invalid, expired or revoked."
    },
    404: {"description": "NOT_FOUND: no such sandbox (or another user's)."},
    409: {"description": "NOT_RUNNING: the sandbox is not running."},
    502: {"description": "UPSTREAM_UNAVAILABLE: nothing answers on that port."},
}


@router.post(
    "/sandboxes/{sandbox_id}/ports/{port}/preview-url",
    status_code=201,
    responses={201: {"model": Envelope[PreviewUrlOut]}, 409: {"description": "NOT_RUNNING"}},
)
async def preview_url(  # noqa: PLR0917 - FastAPI passes them by name
    request: Request,
    sandbox_id: str,
    port: str,
    caller: CurrentUser,
    state: State,
    body: Annotated[PreviewUrlRequest | None, Body()] = None,
) -> Response:
    """A signed, expiring URL of one port of a running sandbox that a browser opens with no other
    credential, until it expires or the sandbox is destroyed. The URL's base is `SBX_PUBLIC_URL`,
    else the address of this request. A `POST` to this path is the API's, never the sandbox's."""
    port_number = parse_port(port)
    seconds = (body or PreviewUrlRequest()).expires_in_seconds
    created = await create_preview_url(request, state, caller, parse_id(sandbox_id), port_number, seconds)
    return ok(created.dump(), 201)


async def _proxy(request: Request, state: State, sandbox_id: str, port: str, path: str = "") -> Response:
    """HTTP to a port of a running sandbox: method, path, query, headers (minus hop-by-hop ones and
    the platform's credentials, plus `X-Forwarded-For/Host/Proto/Prefix`) and body, streamed both
    ways. Auth: the owner's Bearer credential, or a preview link (`?sbx_preview=`, then its
    cookie). Redirects of the sandbox are returned, pointed back under this path."""
    return await proxy_request(request, state, sandbox_id, port)


async def proxy_request(request: Request, state: AppState, sandbox_id: str, port: str) -> Response:
    """A proxied request, from the routes above or a preview host (`hosts`)."""
    port_number = parse_port(port)
    target_path = upstream_path(request.scope.get("raw_path") or request.url.path.encode(), sandbox_id, port)
    try:
        access = await resolve(request, state, sandbox_id, port_number)
    except Unauthorized:
        # Proxied requests skip the global limit; refused ones still count against the caller's IP.
        ip_limit = ratelimit.per_minutes(state.settings.rate_limit_per_minute)
        await ratelimit.enforce(request, "global", f"ip:{ratelimit.client_ip(request)}", ip_limit)
        raise
    limit = ratelimit.per_minutes(state.settings.proxy_rate_limit_per_minute)
    await ratelimit.enforce(request, "proxy", f"user:{access.owner_id}", limit)
    prefix = public_prefix(request.scope, target_path.prefix)
    if access.first_visit is not None and request.method in ("GET", "HEAD"):
        expires_at = access.first_visit.expires_at
        return _first_visit(request, access.first_visit_token, expires_at, prefix, target_path.path)
    return await proxy.forward(request, state.proxy_pool, access, target_path, prefix=prefix)


def _first_visit(request: Request, token: str, expires_at: int, prefix: str, path: bytes) -> Response:
    """Set the preview cookie for this sandbox's port and send the browser to the same address
    without the token (so it is not left in the history, nor sent on as a Referer)."""
    query = without_params(request.scope.get("query_string", b""), {PREVIEW_PARAM}).decode("latin-1")
    location = prefix + path.decode("latin-1") + (f"?{query}" if query else "")
    response = RedirectResponse(location, status_code=303)
    response.headers["cache-control"] = "no-store"
    response.headers["referrer-policy"] = "no-referrer"
    secure = request.url.scheme == "https"
    cookie = preview_cookie_header(
        token, path=prefix or "/", max_age=expires_at - int(time.time()), secure=secure
    )
    response.headers.append("set-cookie", cookie)
    return response


for _method in METHODS:
    router.add_api_route(
        PROXY_PATH,
        _proxy,
        methods=[_method],
        name=f"proxy_{_method.lower()}",
        summary=f"{_method} to a port of a sandbox",
        responses=PROXY_RESPONSES,
        response_class=Response,
    )
    router.add_api_route(
        "/sandboxes/{sandbox_id}/ports/{port}",
        _proxy,
        methods=[_method],
        name=f"proxy_root_{_method.lower()}",
        include_in_schema=False,
        response_class=Response,
    )


@router.websocket(PROXY_PATH)
async def proxy_socket(socket: WebSocket, sandbox_id: str, port: str, path: str = "") -> None:
    """WebSocket to a port of a running sandbox (`?token=` or a preview cookie)."""
    await websocket.serve(socket, socket.app.state.sbx, sandbox_id, port)


@router.websocket("/sandboxes/{sandbox_id}/ports/{port}")
async def proxy_socket_root(socket: WebSocket, sandbox_id: str, port: str) -> None:
    await websocket.serve(socket, socket.app.state.sbx, sandbox_id, port)
