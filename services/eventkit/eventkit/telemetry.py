"""Trace context across hops: the writer's `traceparent` travels in the envelope and headers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_propagator = TraceContextTextMapPropagator()


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
        tracer = trace.get_tracer("eventkit")
        with tracer.start_as_current_span(span_name, kind=trace.SpanKind.CONSUMER, attributes=attributes) as span:
            yield span
    finally:
        otel_context.detach(token)
