"""What billing reacts to: scheduling's appointment events and intake's CaseSubmitted, each turned into one command
for handlers.py, handled in the delivery's inbox transaction (its effect commits with the inbox row).

Every appointment's command is keyed by the appointment (its invoice id is derived from it), so the same fact
delivered twice, even under another event id, has one effect, and a fact that arrives before the confirmation is
kept until the invoice exists.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from uuid import uuid4

from billing.commands import IssueInvoice, KeepSealedPayer, NoteCancellation, NoteCompletion, NoteReschedule
from billing.domain import invoice_id_for
from eventkit.consumer import Delivery
from secondopinion_contracts import EventData
from secondopinion_contracts.events.intake import CaseSubmitted
from secondopinion_contracts.events.scheduling import (
    AppointmentCancelled,
    AppointmentRescheduled,
    ConsultationCompleted,
    SlotConfirmed,
)


def issue_invoice(delivery: Delivery) -> IssueInvoice:
    event = delivery.data
    assert isinstance(event, SlotConfirmed)
    return IssueInvoice(invoice_id=invoice_id_for(event.appointment_id), case_id=event.case_id,
                        appointment_id=event.appointment_id, mode=event.mode, start=event.start, end=event.end,
                        noted_at=delivery.envelope.time)


def note_reschedule(delivery: Delivery) -> NoteReschedule:
    event = delivery.data
    assert isinstance(event, AppointmentRescheduled)
    return NoteReschedule(invoice_id=invoice_id_for(event.appointment_id), case_id=event.case_id,
                          appointment_id=event.appointment_id, start=event.start, end=event.end,
                          noted_at=delivery.envelope.time)


def note_cancellation(delivery: Delivery) -> NoteCancellation:
    event = delivery.data
    assert isinstance(event, AppointmentCancelled)
    return NoteCancellation(invoice_id=invoice_id_for(event.appointment_id), case_id=event.case_id,
                            appointment_id=event.appointment_id, cancelled_by=event.cancelled_by,
                            reason=event.reason, refund_id=uuid4())


def note_completion(delivery: Delivery) -> NoteCompletion:
    event = delivery.data
    assert isinstance(event, ConsultationCompleted)
    return NoteCompletion(invoice_id=invoice_id_for(event.appointment_id), case_id=event.case_id,
                          appointment_id=event.appointment_id, mode=event.mode, completed_at=event.completed_at)


def keep_sealed_payer(delivery: Delivery) -> KeepSealedPayer | None:
    """None (nothing to keep) for a case submitted by an intake that did not seal the payer's name yet."""
    event = delivery.data
    assert isinstance(event, CaseSubmitted)
    if event.payer_name_sealed is None:
        return None
    return KeepSealedPayer(case_id=event.case_id, payer_name_sealed=event.payer_name_sealed)


COMMANDS: Mapping[type[EventData], Callable[[Delivery], Any]] = {
    CaseSubmitted: keep_sealed_payer,
    SlotConfirmed: issue_invoice,
    AppointmentRescheduled: note_reschedule,
    AppointmentCancelled: note_cancellation,
    ConsultationCompleted: note_completion,
}
