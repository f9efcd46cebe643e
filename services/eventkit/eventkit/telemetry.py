"""Trace context across hops: the writer's `traceparent` travels in the envelope and headers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_propagator = TraceContextTextMapPropagator()


def configure_tracing(service: str) -> None:
    """Export spans over OTLP when the standard OTEL_* variables ask for it; otherwise trace context is
    still propagated (ids in envelopes and logs) without exporting anything."""
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return  # already configured (e.g. by a test's in-memory exporter, or several services in one process)
    exporter_choice = os.environ.get("OTEL_TRACES_EXPORTER", "otlp" if _otlp_endpoint() else "none")
    provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service)}))
    if exporter_choice == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def _otlp_endpoint() -> str | None:
    return os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")


# Routes whose query string may hold personal data (intake's search by name, birth date or phone): their spans
# keep the path, never the query.
QUERY_NOT_TRACED = frozenset({"/cases/search"})
_URL_ATTRIBUTES = ("http.url", "url.full", "http.target")


def _keep_query_out(span: trace.Span, scope: dict[str, Any]) -> None:
    """The server span of a QUERY_NOT_TRACED route without its query string (the instrumentation put it in)."""
    if scope.get("path") not in QUERY_NOT_TRACED or not span.is_recording():
        return
    attributes = getattr(span, "attributes", None) or {}
    for name in _URL_ATTRIBUTES:
        if name in attributes:
            span.set_attribute(name, str(attributes[name]).split("?", 1)[0])
    if "url.query" in attributes:
        span.set_attribute("url.query", "")


def instrument_http(app: FastAPI) -> None:
    """A server span per request, continuing the caller's `traceparent` if it sent one."""
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics",
                                       server_request_hook=_keep_query_out)


# A proxy until a provider is configured, then the provider's tracer: one for the process, not one per delivery.
_tracer = trace.get_tracer("eventkit")


def current_traceparent() -> str | None:
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def continued_from(traceparent: str | None, span_name: str, **attributes: str) -> Iterator[trace.Span]:
    """Run as a child span of the trace that `traceparent` names (or a new trace without one)."""
    parent = _propagator.extract({"traceparent": traceparent} if traceparent else {})
    token = otel_context.attach(parent)
    try:
        with _tracer.start_as_current_span(span_name, kind=trace.SpanKind.CONSUMER, attributes=attributes) as span:
            yield span
    finally:
        otel_context.detach(token)
