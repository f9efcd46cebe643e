"""Cross-service test helpers: an in-memory span exporter on the process's tracer provider."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from eventkit.telemetry import configure_tracing

_exporter = InMemorySpanExporter()
_installed = False


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    global _installed
    configure_tracing("tests")
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    if not _installed:
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
        _installed = True
    _exporter.clear()
    yield _exporter
    _exporter.clear()
