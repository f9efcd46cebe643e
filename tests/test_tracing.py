"""One trace from the HTTP request through every event hop it causes."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from eventkit.consumer import Delivery
from eventkit.db import Conn
from eventkit.runtime import ServiceRuntime, wait_until
from eventkit.settings import ServiceSettings
from eventkit.store import EventTypes
from eventkit.testing import EventCollector, bearer, fresh_database, running_app
from intake.bootstrap import build
from intake.settings import IntakeSettings
from secondopinion_contracts.events.intake import CaseSubmitted


async def test_the_trace_of_a_submission_continues_through_the_outbox_into_a_consumer(
        spans: InMemorySpanExporter, database: str, rabbitmq_url: str, tmp_path: Path) -> None:
    handled: list[str] = []

    async def note(conn: Conn, delivery: Delivery) -> None:
        handled.append(str(delivery.envelope.id))

    collector = await EventCollector(rabbitmq_url, "intake.CaseSubmitted.*").start()
    async with fresh_database("consumer") as consumer_db:
        downstream = ServiceRuntime(
            ServiceSettings(service="testsvc", database_url=consumer_db, RABBITMQ_URL=rabbitmq_url),
            types=EventTypes.of(), handlers=lambda _: {CaseSubmitted: note})
        await downstream.start()
        settings = IntakeSettings(INTAKE_DATABASE_URL=database, RABBITMQ_URL=rabbitmq_url, OUTBOX_SWEEP_SECONDS=0.2)
        try:
            async with running_app(build(settings), headers=bearer("coordinator")) as intake:
                response = await intake.post("/cases", json={
                    "requester": {"relationship": "self", "name": "N"},
                    "patient": {"name": "N", "birth_date": "1980-01-01"}, "mode": "online",
                    "department": "neurology", "question": "q",
                    "attending_physician": {"name": "D", "institution": "I", "consents": True},
                    "wants_treatment_here": False, "complaint_or_litigation": False})
                assert response.status_code == 201
                await wait_until(lambda: handled, timeout=10)
        finally:
            await downstream.stop()
            await collector.stop()

    finished = spans.get_finished_spans()
    server = [s for s in finished if s.kind is SpanKind.SERVER and s.name.startswith("POST /cases")]
    assert len(server) == 1
    trace_id = server[0].context.trace_id
    envelope = collector.envelopes[0]
    assert envelope.traceparent is not None
    assert envelope.traceparent.split("-")[1] == format(trace_id, "032x")
    consumer = [s for s in finished if s.kind is SpanKind.CONSUMER and "testsvc" in s.name]
    assert len(consumer) == 1
    assert consumer[0].context.trace_id == trace_id
    assert consumer[0].parent is not None


async def test_a_search_by_name_is_traced_by_its_path_never_its_query(
        spans: InMemorySpanExporter, database: str, rabbitmq_url: str) -> None:
    settings = IntakeSettings(INTAKE_DATABASE_URL=database, RABBITMQ_URL=rabbitmq_url)
    async with running_app(build(settings), headers=bearer("coordinator")) as intake:
        searched = await intake.get("/cases/search", params={"name": "山田 Zzyzx", "phone": "03-4444-1234"})
        assert searched.status_code == 200, searched.text
        listed = await intake.get("/cases", params={"status": "submitted"})
        assert listed.status_code == 200
    server = [span for span in spans.get_finished_spans() if span.kind == SpanKind.SERVER]
    search_spans = [span for span in server if "/cases/search" in str(span.attributes)]
    assert search_spans, "the search was traced"
    traced = " ".join(str(dict(span.attributes or {})) for span in search_spans)
    for value in ("Zzyzx", "%E5%B1%B1", "山田", "4444", "phone="):
        assert value not in traced
    assert any("status=submitted" in str(dict(span.attributes or {})) for span in server), \
        "other routes keep their query"
