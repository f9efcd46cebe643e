"""What reporting reacts to: every event of every service reaches it (its inbox is bound to `#`) and is logged
(projections.ReceivedEventsLog); four of them also become a command on the case's report, handled in the delivery's
inbox transaction."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from eventkit.clock import tokyo_date
from eventkit.consumer import Delivery
from reporting.commands import EraseReportTexts, NoteConsultation, NotePayment, NoteRefund
from secondopinion_contracts import EventData
from secondopinion_contracts.events.billing import PaymentCaptured, RefundIssued
from secondopinion_contracts.events.intake import PersonalDataErased
from secondopinion_contracts.events.scheduling import ConsultationCompleted

EVERY_EVENT = ("#",)


def note_consultation(delivery: Delivery) -> NoteConsultation:
    event = delivery.data
    assert isinstance(event, ConsultationCompleted)
    return NoteConsultation(case_id=event.case_id, appointment_id=event.appointment_id, mode=event.mode,
                            consulted_on=tokyo_date(event.completed_at))


def note_payment(delivery: Delivery) -> NotePayment:
    event = delivery.data
    assert isinstance(event, PaymentCaptured)
    return NotePayment(case_id=event.case_id, invoice_id=event.invoice_id, amount=event.amount)


def note_refund(delivery: Delivery) -> NoteRefund:
    event = delivery.data
    assert isinstance(event, RefundIssued)
    return NoteRefund(case_id=event.case_id, invoice_id=event.invoice_id, amount=event.amount,
                      fully_refunded=event.fully_refunded)


def erase_report_texts(delivery: Delivery) -> EraseReportTexts:
    event = delivery.data
    assert isinstance(event, PersonalDataErased)
    return EraseReportTexts(case_id=event.case_id, erased_on=event.erased_on)


COMMANDS: Mapping[type[EventData], Callable[[Delivery], Any]] = {
    ConsultationCompleted: note_consultation,
    PaymentCaptured: note_payment,
    RefundIssued: note_refund,
    PersonalDataErased: erase_report_texts,
}
