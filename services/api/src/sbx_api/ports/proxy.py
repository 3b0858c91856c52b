"""HTTP to a sandbox's port, streamed both ways.

The request body is read from the client as the sandbox takes it, while the answer is already
being read (`upstream`: full duplex), and the answer's body goes back as it arrives: neither body
is ever held whole, and the sandbox's own `Content-Encoding` passes through untouched. The
connection goes to `<recorded address>:<port>` and nowhere else: the target is the address the
orchestrator recorded, never the request's `Host` or an absolute request line, and redirects are
returned to the client (pointed back under the proxy), never followed here.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import h11
from sbx_common.errors import UpstreamUnavailable
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from sbx_api import ratelimit
from sbx_api.ports.access import Access
from sbx_api.ports.headers import request_headers, response_headers
from sbx_api.ports.paths import UpstreamPath, without_params
from sbx_api.ports.upstream import Reply, TimedOut, Unreachable, UpstreamPool

logger = logging.getLogger(__name__)

# The client's `Expect: 100-continue` was answered by the API's server already.
NOT_FORWARDED = frozenset({"expect"})


def forwarded_for(request: Request, prefix: str) -> dict[str, str]:
    return {
        "for": ratelimit.client_ip(request),
        "host": request.headers.get("host", ""),
        "proto": request.url.scheme,
        "prefix": prefix,
    }


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


class UpstreamResponse(Response):
    """The sandbox's answer, passed on as it streams (its headers kept as a list: several
    `Set-Cookie` headers stay several)."""

    def __init__(self, reply: Reply, headers: list[tuple[bytes, bytes]]) -> None:
        self.reply = reply
        self.status_code = reply.status
        self.raw_list = headers
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = self.reply.body
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_list})
            async for chunk in body:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (h11.ProtocolError, TimedOut, OSError) as exc:
            # The head is out: all that is left is cutting the response short.
            logger.info("upstream response cut short", extra={"error": repr(exc)[:200]})
        finally:
            await body.aclose()  # type: ignore[attr-defined]


async def forward(
    request: Request, pool: UpstreamPool, access: Access, path: UpstreamPath, *, prefix: str
) -> UpstreamResponse:
    headers = request_headers(
        list(request.headers.items()),
        keep_authorization=access.by_preview,
        forwarded=forwarded_for(request, prefix),
        drop=NOT_FORWARDED,
    )
    length = request.headers.get("content-length")
    content: AsyncIterator[bytes] | None = None
    if length is not None and length.isdigit() and int(length) > 0:
        headers.append(("content-length", length))
        content = _body(request.receive)
    elif "chunked" in request.headers.get("transfer-encoding", "").lower():
        headers.append(("transfer-encoding", "chunked"))
        content = _body(request.receive)
    query = without_params(request.scope.get("query_string", b""), access.platform_params)
    target = path.path + (b"?" + query if query else b"")
    try:
        reply = await pool.request(
            access.address, access.port, method=request.method, target=target, headers=headers, body=content
        )
    except Unreachable as exc:
        logger.info(
            "sandbox port did not answer",
            extra={"sandboxId": str(access.sandbox_id), "port": access.port, "error": str(exc)[:200]},
        )
        raise UpstreamUnavailable(f"Nothing answers on port {access.port} of the sandbox.") from None
    except TimedOut:
        raise UpstreamUnavailable(f"Port {access.port} of the sandbox did not answer in time.") from None
    origin = f"http://{access.address}:{access.port}"
    return UpstreamResponse(reply, response_headers(reply.headers, upstream_origin=origin, prefix=prefix))
