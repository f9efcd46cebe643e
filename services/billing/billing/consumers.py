"""Billing reacts to scheduling's events: contract event -> command, inside the inbox transaction.

Every reaction is keyed by the appointment (its invoice id is derived from it), so the same fact
delivered twice, even under another event id, has one effect, and a fact that arrives before the
confirmation is kept until the invoice exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from uuid import uuid4

from billing.commands import IssueInvoice, NoteCancellation, NoteCompletion, NoteReschedule
from billing.domain import invoice_id_for
from billing.handlers import BillingHandlers
from billing.payers import save_sealed_payer
from eventkit.consumer import Delivery, Handler, LoadsStreams
from eventkit.db import Conn
from secondopinion_contracts import EventData
from secondopinion_contracts.events.intake import CaseSubmitted
from secondopinion_contracts.events.scheduling import (
    AppointmentCancelled,
    AppointmentRescheduled,
    ConsultationCompleted,
    SlotConfirmed,
)


def handlers(billing: BillingHandlers) -> Mapping[type[EventData], Handler]:
    def invoice_stream(delivery: Delivery) -> list[str]:
        event = delivery.data
        assert isinstance(event, SlotConfirmed | AppointmentRescheduled | AppointmentCancelled | ConsultationCompleted)
        return [billing.invoices.stream_id(invoice_id_for(event.appointment_id))]

    async def issue_invoice_when_slot_confirmed(conn: Conn, delivery: Delivery) -> None:
        event = delivery.data
        assert isinstance(event, SlotConfirmed)
        command = IssueInvoice(invoice_id=invoice_id_for(event.appointment_id), case_id=event.case_id,
                               appointment_id=event.appointment_id, mode=event.mode, start=event.start, end=event.end,
                               noted_at=delivery.envelope.time)
        await billing.issue_invoice(command, delivery.context, conn=conn)

    async def move_consultation_when_appointment_rescheduled(conn: Conn, delivery: Delivery) -> None:
        event = delivery.data
        assert isinstance(event, AppointmentRescheduled)
        command = NoteReschedule(invoice_id=invoice_id_for(event.appointment_id), case_id=event.case_id,
                                 appointment_id=event.appointment_id, start=event.start, end=event.end,
                                 noted_at=delivery.envelope.time)
        await billing.note_reschedule(command, delivery.context, conn=conn)

    async def void_or_refund_when_appointment_cancelled(conn: Conn, delivery: Delivery) -> None:
        event = delivery.data
        assert isinstance(event, AppointmentCancelled)
        command = NoteCancellation(invoice_id=invoice_id_for(event.appointment_id), case_id=event.case_id,
                                   appointment_id=event.appointment_id, cancelled_by=event.cancelled_by,
                                   reason=event.reason, refund_id=uuid4(), at=billing.now())
        await billing.note_cancellation(command, delivery.context, conn=conn)

    async def request_charge_when_consultation_completed(conn: Conn, delivery: Delivery) -> None:
        event = delivery.data
        assert isinstance(event, ConsultationCompleted)
        command = NoteCompletion(invoice_id=invoice_id_for(event.appointment_id), case_id=event.case_id,
                                 appointment_id=event.appointment_id, mode=event.mode,
                                 completed_at=event.completed_at)
        await billing.note_completion(command, delivery.context, conn=conn)

    async def keep_the_sealed_payer_name_when_case_submitted(conn: Conn, delivery: Delivery) -> None:
        event = delivery.data
        assert isinstance(event, CaseSubmitted)
        if event.payer_name_sealed is not None:
            await save_sealed_payer(conn, event.case_id, event.payer_name_sealed)

    return {
        CaseSubmitted: keep_the_sealed_payer_name_when_case_submitted,
        # Each of these loads its invoice's stream: a batch of deliveries reads them all in one statement.
        SlotConfirmed: LoadsStreams(issue_invoice_when_slot_confirmed, invoice_stream),
        AppointmentRescheduled: LoadsStreams(move_consultation_when_appointment_rescheduled, invoice_stream),
        AppointmentCancelled: LoadsStreams(void_or_refund_when_appointment_cancelled, invoice_stream),
        ConsultationCompleted: LoadsStreams(request_charge_when_consultation_completed, invoice_stream),
    }
