"""OpenTelemetry tracing: set-up from the standard `OTEL_*` variables, and trace context in NATS
message headers.

`setup_telemetry(service)` runs once per process (the worker frame and the API's `main` call it).
The exporter comes from `OTEL_TRACES_EXPORTER`, a comma-separated list:

- `none` (the default): no SDK is installed; spans are no-ops, but a trace context that arrives
  in a message is still passed on to the messages this process publishes.
- `otlp`: OTLP over HTTP/protobuf to `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`),
  batched; the exporter reads its other standard variables itself.
- `console`: one JSON document per span on stdout.
- `sbx_jsonfile`: one JSON line per span appended to the file `SBX_TRACE_FILE`; made for tests
  that run services as separate processes and read their spans afterwards.

`OTEL_SERVICE_NAME` defaults to `sbx-<service>`; `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_PROPAGATORS`
(W3C `traceparent` by default) and `OTEL_SDK_DISABLED` work as the specification says.

Across NATS, the publisher calls `inject_headers()` and sends the result as message headers; the
consumer passes the message's headers to `consumer_span()` so its span continues the trace.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span, SpanKind

logger = logging.getLogger(__name__)

TRACE_FILE_VARIABLE = "SBX_TRACE_FILE"
INSTRUMENTATION_NAME = "sbx"


class JsonLinesSpanExporter(SpanExporter):
    """Appends each finished span as one JSON line to a file (several processes may share it)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(span_record(span)) + "\n" for span in spans)
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """A span as a flat JSON-able dict with hex ids (what `JsonLinesSpanExporter` writes)."""
    context = span.get_span_context()
    assert context is not None
    return {
        "name": span.name,
        "service": span.resource.attributes.get(SERVICE_NAME),
        "traceId": trace.format_trace_id(context.trace_id),
        "spanId": trace.format_span_id(context.span_id),
        "parentSpanId": trace.format_span_id(span.parent.span_id) if span.parent else None,
        "kind": span.kind.name,
        "start": span.start_time,
        "end": span.end_time,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
    }


def _exporter_names() -> list[str]:
    raw = os.environ.get("OTEL_TRACES_EXPORTER", "none")
    return [name.strip().lower() for name in raw.split(",") if name.strip()]


def _processor(name: str) -> SpanProcessor | None:
    if name == "otlp":
        protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
            "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
        )
        if protocol != "http/protobuf":
            logger.warning("only the http/protobuf OTLP protocol is installed", extra={"protocol": protocol})
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return BatchSpanProcessor(OTLPSpanExporter())
    if name == "console":
        return SimpleSpanProcessor(ConsoleSpanExporter())
    if name == "sbx_jsonfile":
        path = os.environ.get(TRACE_FILE_VARIABLE)
        if not path:
            logger.warning("OTEL_TRACES_EXPORTER=sbx_jsonfile needs SBX_TRACE_FILE; no spans are written")
            return None
        return SimpleSpanProcessor(JsonLinesSpanExporter(path))
    if name != "none":
        logger.warning("unknown OTEL_TRACES_EXPORTER value ignored", extra={"exporter": name})
    return None


def tracing_requested() -> bool:
    """Whether the `OTEL_*` variables ask for spans to be exported at all."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(name != "none" for name in _exporter_names())


def setup_telemetry(service: str) -> TracerProvider | None:
    """Install the tracer provider the `OTEL_*` variables ask for; None when tracing is off."""
    if not tracing_requested():
        return None
    processors = [p for p in (_processor(name) for name in _exporter_names()) if p is not None]
    if not processors:
        return None
    provider = _sdk_provider(service)
    for processor in processors:
        provider.add_span_processor(processor)
    logger.info("tracing enabled", extra={"exporters": _exporter_names()})
    return provider


def _sdk_provider(service: str) -> TracerProvider:
    """The process's SDK provider, installed once (OpenTelemetry refuses to replace it)."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; the default name
    # applies only when neither names the service.
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: f"sbx-{service}"}))
    provider = TracerProvider(resource=resource)
    trace.set_tracer_provider(provider)
    return provider


def install_in_memory_exporter(service: str = "test") -> InMemorySpanExporter:
    """For tests in one process: every span ended from now on is kept in the returned exporter."""
    exporter = InMemorySpanExporter()
    _sdk_provider(service).add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def tracer() -> trace.Tracer:
    return trace.get_tracer(INSTRUMENTATION_NAME)


def inject_headers(headers: Mapping[str, str] | None = None) -> dict[str, str]:
    """`headers` plus the current trace context (`traceparent`, `tracestate`), for a message."""
    carrier = dict(headers or {})
    propagate.inject(carrier)
    return carrier


def extract_context(headers: Mapping[str, str] | None) -> Context:
    """The trace context a message carries in its headers (an empty context when none)."""
    return propagate.extract(dict(headers or {}))


@contextmanager
def consumer_span(
    name: str,
    headers: Mapping[str, str] | None,
    attributes: Mapping[str, Any] | None = None,
    kind: SpanKind = SpanKind.CONSUMER,
) -> Iterator[Span]:
    """A span for handling one message, continuing the trace of whoever published it (a new
    trace when the message carries none). `kind=SpanKind.SERVER` for a request to answer."""
    with tracer().start_as_current_span(
        name, context=extract_context(headers), kind=kind, attributes=dict(attributes or {})
    ) as span:
        yield span


@contextmanager
def child_span(name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[Span]:
    """An INTERNAL span under the current one (e.g. one Docker call of a command). Outside any
    trace it records nothing, so periodic work (health pings) does not start traces of its own."""
    current = trace.get_current_span()
    if not current.get_span_context().is_valid:
        yield current
        return
    with tracer().start_as_current_span(name, attributes=dict(attributes or {})) as span:
        yield span


def current_trace_id() -> str | None:
    """The current span's trace id as 32 hex characters, or None when no trace is recorded."""
    context = trace.get_current_span().get_span_context()
    return trace.format_trace_id(context.trace_id) if context.is_valid else None
