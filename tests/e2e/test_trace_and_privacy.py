"""What the integration and privacy teams rely on across the services: one trace from the request through
every hop it causes, and a patient's name that never leaves intake in clear."""

from __future__ import annotations

import io
import json
import logging
from datetime import time

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from eventkit.crypto import MASK
from eventkit.logs import JsonFormatter
from eventkit.testing import bearer, drain_queue
from tests.e2e.hospital import CONSULTATION_DAY, SERVICES, STAFF, expect, hospital


async def test_one_trace_runs_from_a_withdrawal_through_intake_scheduling_billing_and_reporting(
        spans: InMemorySpanExporter, rabbitmq_url: str) -> None:
    async with hospital(rabbitmq_url) as h:
        case_id = await h.submit_and_accept("in_person")
        await h.book(case_id)
        await h.invoice_of(case_id)
        spans.clear()
        # The patient withdraws: intake records it, scheduling cancels the appointment, billing voids the
        # invoice, reporting hears of all three. Nothing else happens meanwhile.
        expect(await h.intake.post(f"/cases/{case_id}/withdrawal", headers=STAFF["coordinator"],
                                   json={"reason": "patient_request"}), 200)
        events = await h.wait_for(case_id, "CaseWithdrawn", "AppointmentCancelled", "InvoiceVoided")
        await h.wait_consumed("reporting", [e.id for e in events if e.event_name == "InvoiceVoided"])

    finished = spans.get_finished_spans()
    [request] = [s for s in finished if s.kind is SpanKind.SERVER and s.name.startswith("POST /cases/")]
    trace_id = request.context.trace_id
    caused = ("CaseWithdrawn", "AppointmentCancelled", "InvoiceVoided")
    hops = {e.event_name: e for e in events if e.event_name in caused}
    assert sorted(hops) == sorted(caused)
    for name, envelope in hops.items():
        assert envelope.traceparent is not None, name
        assert envelope.traceparent.split("-")[1] == format(trace_id, "032x"), f"{name} left the request's trace"
    consumers = sorted(s.name for s in finished if s.kind is SpanKind.CONSUMER and s.context.trace_id == trace_id)
    for service in ("scheduling", "billing", "reporting"):
        assert any(service in name for name in consumers), f"no {service} consumer in the request's trace: {consumers}"

CANARY = "Zzyzx Quillfeather-Canary"


async def test_a_patients_name_never_appears_in_logs_spans_bus_messages_or_dead_letters(
        spans: InMemorySpanExporter, rabbitmq_url: str, caplog: pytest.LogCaptureFixture,
        request: pytest.FixtureRequest) -> None:
    caplog.set_level(logging.DEBUG)
    written = io.StringIO()
    json_logs = logging.StreamHandler(written)
    json_logs.setFormatter(JsonFormatter("tests"))
    logging.getLogger().addHandler(json_logs)
    request.addfinalizer(lambda: logging.getLogger().removeHandler(json_logs))
    async with hospital(rabbitmq_url) as h:
        case_id = await h.submit_and_accept("in_person", patient_name=CANARY)
        shown = expect(await h.intake.get(f"/cases/{case_id}", headers=STAFF["coordinator"]), 200)
        assert CANARY in json.dumps(shown, ensure_ascii=False), "the desk does see the name: the search below is real"
        appointment_id = (await h.book(case_id))["appointment_id"]
        invoice = await h.invoice_of(case_id)
        h.clock.set_tokyo(CONSULTATION_DAY, time(9, 30))
        expect(await h.billing.post(f"/invoices/{invoice['invoice_id']}/payments", headers=STAFF["cashier"],
                                    json={"method": "card", "amount": 33_000}), 201)
        expect(await h.billing.post(f"/invoices/{invoice['invoice_id']}/receipt", headers=STAFF["cashier"]), 201)
        h.clock.set_tokyo(CONSULTATION_DAY, time(11, 5))
        await h.complete_once_paid(appointment_id)
        await h.write_report(case_id)
        expect(await h.deliver(case_id, "handed_to_patient"), 200)
        await h.wait_for(case_id, "CaseClosed")
        published = {envelope.event_name for envelope in h.published(case_id)}
        bodies = [message.body.decode() for message in h.bus.messages]
        headers = [json.dumps(message.headers, default=str) for message in h.bus.messages]
        dead = [message for service in SERVICES[1:]
                for message in await drain_queue(rabbitmq_url, f"{service}.inbox.dlq", timeout=0.5)]

    assert {"CaseSubmitted", "SlotConfirmed", "PaymentCaptured", "ReceiptIssued", "CaseClosed"} <= published, \
        "the whole flow went over the bus"
    fragments = {CANARY, *CANARY.split()}
    for where, texts in {
        "a message body": bodies,
        "a message header": headers,
        "a dead-lettered message": [m.body.decode(errors="replace") + json.dumps(m.headers, default=str)
                                    for m in dead],
        "a log record": [record.getMessage() + json.dumps(record.__dict__, default=str) for record in caplog.records],
        "a span": [span.to_json() for span in spans.get_finished_spans()],
    }.items():
        leaked = [text for text in texts if any(fragment in text for fragment in fragments)]
        assert not leaked, f"the patient's name is in {where}: {leaked[0][:300]}"
    assert {record.name.split(".")[0] for record in caplog.records} >= {"eventkit"}, "the services' logs were captured"
    assert spans.get_finished_spans(), "spans were captured"
    lines = [json.loads(line) for line in written.getvalue().splitlines()]
    about_the_case = [line for line in lines if line.get("case_id") == case_id]
    assert {line["service"] for line in about_the_case} >= {"scheduling", "billing", "reporting"}, \
        "each consumer logs what it did with the case's events, as JSON naming the service"
    assert all(line.get("trace_id") for line in about_the_case), "every line about the case has its trace id"
    assert not [line for line in lines if any(fragment in json.dumps(line) for fragment in fragments)]


async def test_the_payer_name_reaches_the_receipt_sealed_and_is_masked_once_the_case_is_erased(
        rabbitmq_url: str) -> None:
    async with hospital(rabbitmq_url) as h:
        case_id = await h.submit_and_accept("in_person", patient_name=CANARY)
        await h.book(case_id)
        invoice_id = (await h.invoice_of(case_id))["invoice_id"]
        h.clock.set_tokyo(CONSULTATION_DAY, time(9, 30))
        cashier = STAFF["cashier"]
        expect(await h.billing.post(f"/invoices/{invoice_id}/payments", headers=cashier,
                                    json={"method": "cash", "amount": 33_000}), 201)
        expect(await h.billing.post(f"/invoices/{invoice_id}/receipt", headers=cashier), 201)
        receipt = expect(await h.billing.get(f"/invoices/{invoice_id}/receipt", headers=cashier), 200)
        assert receipt["payer_name"] == f"{CANARY} (daughter)"
        assert (receipt["total"], receipt["tax"], receipt["tax_rate_percent"]) == (33_000, 3_000, 10)
        assert receipt["qualified_invoice_registration_number"].startswith("T")
        assert (await h.billing.get(f"/invoices/{invoice_id}/receipt", headers=STAFF["coordinator"])).status_code \
            == 403
        [kept] = await h.fetch("billing", "SELECT payer_name_sealed FROM case_payers WHERE case_id = $1::uuid",
                               case_id)
        assert CANARY.split()[0] not in kept["payer_name_sealed"], "billing keeps the name sealed only"
        # Intake opened the name itself, for billing's receipt, and logged the cashier and the service.
        reads = await h.fetch("intake", "SELECT actor_id, action FROM access_log WHERE case_id = $1::text AND"
                              " action LIKE 'read_personal_data_for_%'", str(case_id))
        assert [tuple(row) for row in reads] == [("cashier-3", "read_personal_data_for_receipt_via_billing")]

        # Years later, past the retention period, two privacy officers erase the case: the receipt's name goes too.
        h.clock.set_tokyo(CONSULTATION_DAY.replace(year=CONSULTATION_DAY.year + 6), time(10, 0))
        erasure = f"/cases/{case_id}/personal-data/erasure"
        expect(await h.intake.post(erasure, headers=bearer("privacy_officer", subject="privacy-1")), 202)
        expect(await h.intake.post(f"{erasure}/approval", headers=bearer("privacy_officer", subject="privacy-2")), 200)
        erased = expect(await h.billing.get(f"/invoices/{invoice_id}/receipt", headers=cashier), 200)
        assert erased["payer_name"] == MASK
        assert erased["receipt_number"] == receipt["receipt_number"]
