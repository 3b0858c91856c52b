"""OpenTelemetry: one SERVER span per HTTP request or WebSocket session.

The span continues a caller's W3C `traceparent` and is current while the route runs, so the
commands the route publishes carry it on to the orchestrator (`sbx_common.telemetry`). It is
named after the route template (`POST /sandboxes`), never the raw path, to keep names few.
With tracing off (`OTEL_TRACES_EXPORTER=none`) the span is a no-op.
"""

from __future__ import annotations

from opentelemetry.trace import SpanKind, Status, StatusCode
from sbx_common import telemetry
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sbx_api.middleware import route_template


class TracingMiddleware:
    """Outermost middleware: everything the request does happens inside its span."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        method = scope.get("method", "WS") if scope["type"] == "http" else "WS"
        status = {"code": 0}

        async def send_and_observe(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        with telemetry.tracer().start_as_current_span(
            method,
            context=telemetry.extract_context(headers),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope.get("path", "")},
        ) as span:
            try:
                await self.app(scope, receive, send_and_observe)
            finally:
                template = route_template(scope)
                span.update_name(f"{method} {template}")
                span.set_attribute("http.route", template)
                if status["code"]:
                    span.set_attribute("http.response.status_code", status["code"])
                    if status["code"] >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                trace_id = scope.get("state", {}).get("trace_id")
                if trace_id:
                    span.set_attribute("sbx.trace_id", trace_id)
