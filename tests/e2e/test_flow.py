"""A second-opinion case from the request to its closure, through all four services on the real broker and
databases: both modes, each hop made by the event the previous service published."""

from __future__ import annotations

from datetime import datetime, time

from eventkit.testing import assert_valid
from secondopinion_contracts import CloudEvent
from tests.e2e.hospital import CONSULTATION_DAY, STAFF, expect, hospital

INTAKE = ["CaseSubmitted", *["DocumentReceived"] * 4, "ConsentVerified", "CaseAccepted"]
REPORT = ["ReportDrafted", "ReportFinalized", "ReportDelivered", "CaseClosed"]
IN_PERSON = {
    "intake": INTAKE,
    "scheduling": ["SlotsProposed", "SlotConfirmed", "AppointmentSlipIssued", "ConsultationCompleted"],
    "billing": ["InvoiceIssued", "PaymentCaptured"],
    "reporting": REPORT,
}
ONLINE = {
    "intake": INTAKE,
    "scheduling": ["SlotsProposed", "SlotConfirmed", "OnlineBookingRegistered", "ConsultationCompleted"],
    "billing": ["InvoiceIssued", "PaymentCaptured"],
    "reporting": REPORT,
}


def by_service(events: list[CloudEvent]) -> dict[str, list[str]]:
    """Each service's events of the case in the order of their stream sequence (the bus only orders a stream)."""
    ordered = sorted(events, key=lambda envelope: (envelope.service, envelope.subject, envelope.sequence))
    return {service: [e.event_name for e in ordered if e.service == service]
            for service in ("intake", "scheduling", "billing", "reporting")}


def assert_published_once_and_valid(events: list[CloudEvent]) -> None:
    assert len({e.id for e in events}) == len(events), "every event is published once"
    for envelope in events:
        assert_valid(envelope)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def value(scraped: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0 if there is none yet)."""
    return sum(v for (sample, sample_labels), v in scraped.items()
               if sample == name and set(labels.items()) <= sample_labels)


def assert_operations_can_see_the_flow(before: dict[str, Samples], after: dict[str, Samples]) -> None:
    """Each service's /metrics has what the operations team alerts on, moved by the flow as it should be (the
    registry is the process's, so counters are compared with a scrape taken before the flow)."""
    def grew(scraped_from: str, name: str, **labels: str) -> float:
        return value(after[scraped_from], name, **labels) - value(before[scraped_from], name, **labels)

    def now(service: str, name: str) -> float:
        assert any(sample == name for sample, _ in after[service]), f"no {name} in {service}'s /metrics"
        return value(after[service], name, service=service)

    accepted = "secondopinion.intake.CaseAccepted.v1"
    assert grew("scheduling", "secondopinion_events_handled_total", service="scheduling", event_type=accepted,
                outcome="done") == 1
    assert grew("scheduling", "secondopinion_handler_seconds_count", service="scheduling", event_type=accepted) == 1
    assert grew("reporting", "secondopinion_projection_delay_seconds_count", service="reporting") >= 10
    assert grew("billing", "secondopinion_http_seconds_count", service="billing", method="POST",
                route="/invoices/{invoice_id}/payments", status="201") == 1
    for gauge in ("secondopinion_outbox_backlog", "secondopinion_outbox_oldest_age_seconds",
                  "secondopinion_dlq_messages", "secondopinion_projection_lag_events"):
        assert now("billing", gauge) == 0, gauge


def time_of(events: list[CloudEvent], name: str) -> datetime:
    [envelope] = [e for e in events if e.event_name == name]
    return envelope.time


async def test_an_in_person_case_is_paid_at_the_counter_before_the_consultation_and_closed_by_the_report(
        rabbitmq_url: str) -> None:
    async with hospital(rabbitmq_url) as h:
        before = await h.scrape_metrics()
        case_id = await h.submit_and_accept("in_person")
        appointment = await h.book(case_id)
        appointment_id = appointment["appointment_id"]
        invoice = await h.invoice_of(case_id)
        assert (invoice["mode"], invoice["total"], invoice["tax"]) == ("in_person", 33_000, 3_000)

        # The consultation day: unpaid, the consultation cannot be completed; the cashier takes the fee first.
        h.clock.set_tokyo(CONSULTATION_DAY, time(11, 5))
        unpaid = await h.complete(appointment_id)
        assert unpaid.status_code == 409, unpaid.text
        h.clock.set_tokyo(CONSULTATION_DAY, time(9, 30))
        expect(await h.billing.post(f"/invoices/{invoice['invoice_id']}/payments", headers=STAFF["cashier"],
                                    json={"method": "cash", "amount": 33_000}), 201)
        await h.wait_for(case_id, "PaymentCaptured")
        h.clock.set_tokyo(CONSULTATION_DAY, time(11, 5))

        await h.complete_once_paid(appointment_id)
        await h.write_report(case_id)
        delivered = expect(await h.deliver(case_id, "handed_to_patient"), 200)
        assert delivered["case_closed"] is True
        events = await h.wait_for(case_id, "CaseClosed")

        timeline = expect(await h.reporting.get(f"/cases/{case_id}/timeline", headers=STAFF["coordinator"]), 200)
        after = await h.scrape_metrics()

    assert by_service(events) == IN_PERSON
    assert_published_once_and_valid(events)
    assert time_of(events, "PaymentCaptured") < time_of(events, "ConsultationCompleted"), "paid before consulting"
    assert [entry["event"] for entry in timeline["events"]][-1] == "CaseClosed"
    assert_operations_can_see_the_flow(before, after)


async def test_an_online_case_is_charged_to_the_card_after_the_consultation_and_closed_by_the_posted_report(
        rabbitmq_url: str) -> None:
    async with hospital(rabbitmq_url) as h:
        case_id = await h.submit_and_accept("online")
        appointment_id = (await h.book(case_id))["appointment_id"]
        expect(await h.scheduling.post(f"/appointments/{appointment_id}/online-booking", headers=STAFF["coordinator"],
                                       json={"clinics_booking_ref": "CLINICS-2026-000123"}), 200)
        invoice = await h.invoice_of(case_id)
        assert (invoice["mode"], invoice["total"], invoice["tax"]) == ("online", 44_000, 4_000)

        h.clock.set_tokyo(CONSULTATION_DAY, time(11, 5))
        expect(await h.complete(appointment_id), 200)
        await h.wait_for(case_id, "PaymentCaptured")
        await h.write_report(case_id)
        assert (await h.deliver(case_id, "handed_to_patient")).status_code == 409, "an online report is posted"
        delivered = expect(await h.deliver(case_id, "posted_to_attending_physician"), 200)
        assert delivered["case_closed"] is True
        events = await h.wait_for(case_id, "CaseClosed")

    assert by_service(events) == ONLINE
    assert_published_once_and_valid(events)
    [captured] = [e for e in events if e.event_name == "PaymentCaptured"]
    assert (captured.data["method"], captured.data["amount"]) == ("online_card", 44_000)
    assert [charge["amount"] for charge in h.simulator.charges] == [44_000], "the card is charged once"
