"""HTTP middleware: trace id, body size limit, rate limits, request metrics."""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid

from sbx_common.errors import InternalError, PayloadTooLarge, PlatformError, Unavailable
from sbx_common.logging import trace_id_var
from sbx_common.telemetry import current_trace_id
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sbx_api import metrics, ratelimit
from sbx_api.deps import Caller, global_limits
from sbx_api.exception_handlers import DEPENDENCY_ERRORS, render
from sbx_api.ports.paths import is_proxy_request

logger = logging.getLogger("sbx.api.access")

_TRACE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def route_template(scope: Scope) -> str:
    """The matched route's template (never the raw path, to bound label cardinality)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


class TraceMiddleware:
    """Gives every request a trace id (the caller's `x-trace-id` if sane) and echoes it back.

    Without one, the id is the OpenTelemetry trace id when tracing is on (so a log line, the
    `x-trace-id` header and the trace agree), else a random one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers", [])).get(b"x-trace-id", b"").decode("latin-1")
        trace_id = incoming if _TRACE_ID.match(incoming) else (current_trace_id() or uuid.uuid4().hex)
        scope.setdefault("state", {})["trace_id"] = trace_id
        token = trace_id_var.set(trace_id)
        started = time.perf_counter()
        status_holder = {"status": 500}

        response_started = {"yes": False}

        async def send_with_trace(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_started["yes"] = True
                status_holder["status"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-trace-id", trace_id.encode()))
                headers.extend(ratelimit.response_headers(scope["state"]))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_trace)
        except Exception:
            # Rendered here rather than by Starlette's outermost error middleware, so that the
            # 500 still carries x-trace-id and the log line its trace id.
            if scope["type"] != "http" or response_started["yes"]:
                raise
            logger.exception("unhandled error")
            await _send_error(send_with_trace, InternalError())
        finally:
            if scope["type"] == "http":
                elapsed = time.perf_counter() - started
                template = route_template(scope)
                metrics.observe_request(scope["method"], template, status_holder["status"], elapsed)
                caller = scope["state"].get("caller")
                logger.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "route": template,
                        "status": status_holder["status"],
                        "durationMs": round(elapsed * 1000, 2),
                        "userId": str(caller.user_id) if isinstance(caller, Caller) else None,
                        "pid": os.getpid(),  # which of the SBX_API_WORKERS processes answered
                    },
                )
            trace_id_var.reset(token)


# File uploads: raw bodies streamed on to the sandbox, with their own (larger) limit.
_UPLOAD_PATH = re.compile(r"^/sandboxes/[^/]+/files/(content|archive)$")


class BodySizeLimitMiddleware:
    """Rejects bodies over the limit with 413 before reading them whole (file uploads have
    `upload_max_bytes`, SBX_MAX_UPLOAD_BYTES)."""

    def __init__(self, app: ASGIApp, max_bytes: int, upload_max_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.upload_max_bytes = upload_max_bytes or max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_proxy_request(scope["method"], scope.get("path", "")):
            # A sandbox's port takes whatever body it takes, streamed (never held whole).
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        if scope.get("method") == "PUT" and _UPLOAD_PATH.match(scope.get("path", "")):
            limit = self.upload_max_bytes
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_error(send, PayloadTooLarge())
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge()
            return message

        await self.app(scope, limited_receive, send)


class RateLimitMiddleware:
    """Counts every HTTP request but the operations routes against the limits of
    `deps.global_limits`, before the route reads its body: a malformed body counts too, so no
    request can skip the limits (FastAPI parses a body before it runs route dependencies)."""

    # The dashboard's static files (/ui) count no more than the documentation pages do.
    UNLIMITED = ("/health", "/metrics", "/openapi.json", "/docs", "/redoc", "/ui")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if (
            scope["type"] != "http"
            or path.startswith(self.UNLIMITED)
            or is_proxy_request(scope["method"], path)
        ):
            # Proxied requests count against their own limit (the proxy's route enforces it).
            await self.app(scope, receive, send)
            return
        try:
            await global_limits(HTTPConnection(scope))
        except PlatformError as exc:
            await render(exc)(scope, receive, send)
            return
        except DEPENDENCY_ERRORS:
            await render(Unavailable())(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _send_error(send: Send, exc: PlatformError) -> None:
    body = json.dumps(exc.to_body()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": exc.status_code,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
