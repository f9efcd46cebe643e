"""What scheduling reacts to: CaseAccepted and CaseWithdrawn from intake, PaymentCaptured from
billing. Each handler runs inside the inbox transaction, so its effect commits with the inbox row.

Events may arrive late, twice (under new ids) or out of order: every reaction is decided against the
case's stream, so a repeat changes nothing, a withdrawal before the acceptance keeps the case closed,
and a payment for a case not known here yet is remembered for when it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from uuid import UUID

from eventkit.consumer import Delivery, Handler, LoadsStreams
from eventkit.db import Conn
from scheduling.commands import RecordFeePayment, RecordWithdrawal, StartScheduling
from scheduling.handlers import SchedulingHandlers
from secondopinion_contracts import EventData
from secondopinion_contracts.events.billing import PaymentCaptured
from secondopinion_contracts.events.intake import CaseAccepted, CaseWithdrawn


def subscriptions(handlers: SchedulingHandlers) -> Mapping[type[EventData], Handler]:
    async def on_case_accepted(conn: Conn, delivery: Delivery) -> None:
        event = delivery.data
        assert isinstance(event, CaseAccepted)
        await handlers.start_scheduling_when_case_accepted(
            StartScheduling(case_id=event.case_id, department=event.department, mode=event.mode),
            delivery.context, conn)

    async def on_case_withdrawn(conn: Conn, delivery: Delivery) -> None:
        event = delivery.data
        assert isinstance(event, CaseWithdrawn)
        await handlers.cancel_appointment_when_case_withdrawn(
            RecordWithdrawal(case_id=event.case_id, reason=event.reason), delivery.context, conn)

    async def on_payment_captured(conn: Conn, delivery: Delivery) -> None:
        event = delivery.data
        assert isinstance(event, PaymentCaptured)
        # `appointment_id` is optional in PaymentCaptured v1 (added after its first release): producers of
        # the first release leave it out, and then the payment counts for the case's current appointment.
        appointment_id: UUID | None = getattr(event, "appointment_id", None)
        await handlers.record_payment_when_payment_captured(
            RecordFeePayment(case_id=event.case_id, invoice_id=event.invoice_id, amount=event.amount,
                             captured_at=_aware(event.captured_at), appointment_id=appointment_id),
            delivery.context, conn)

    def case_stream(delivery: Delivery) -> list[str]:
        event = delivery.data
        assert isinstance(event, CaseAccepted | CaseWithdrawn | PaymentCaptured)
        return [handlers.cases.stream_id(event.case_id)]

    # Each loads its case's stream (a withdrawal also the slots the case holds, known only from the case): a batch
    # of deliveries reads the cases' streams in one statement.
    return {CaseAccepted: LoadsStreams(on_case_accepted, case_stream),
            CaseWithdrawn: LoadsStreams(on_case_withdrawn, case_stream),
            PaymentCaptured: LoadsStreams(on_payment_captured, case_stream)}


def _aware(instant: datetime) -> datetime:
    # The contract says UTC on the wire; a producer that drops the offset still means UTC.
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)
