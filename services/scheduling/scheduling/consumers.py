"""What scheduling reacts to: CaseAccepted and CaseWithdrawn from intake, PaymentCaptured from billing, each turned
into one command for handlers.py, handled in the delivery's inbox transaction (its effect commits with the inbox row).

Events may arrive late, twice (under new ids) or out of order: every command is decided against the case's stream,
so a repeat changes nothing, a withdrawal before the acceptance keeps the case closed, and a payment for a case not
known here yet is remembered for when it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventkit.consumer import Delivery
from scheduling.commands import RecordFeePayment, RecordWithdrawal, StartScheduling
from secondopinion_contracts import EventData
from secondopinion_contracts.events.billing import PaymentCaptured
from secondopinion_contracts.events.intake import CaseAccepted, CaseWithdrawn


def start_scheduling(delivery: Delivery) -> StartScheduling:
    event = delivery.data
    assert isinstance(event, CaseAccepted)
    return StartScheduling(case_id=event.case_id, department=event.department, mode=event.mode)


def record_withdrawal(delivery: Delivery) -> RecordWithdrawal:
    event = delivery.data
    assert isinstance(event, CaseWithdrawn)
    return RecordWithdrawal(case_id=event.case_id, reason=event.reason)


def record_fee_payment(delivery: Delivery) -> RecordFeePayment:
    event = delivery.data
    assert isinstance(event, PaymentCaptured)
    # `appointment_id` is optional in PaymentCaptured v1 (added after its first release): producers of the first
    # release leave it out, and then the payment counts for the case's current appointment.
    appointment_id: UUID | None = getattr(event, "appointment_id", None)
    return RecordFeePayment(case_id=event.case_id, invoice_id=event.invoice_id, amount=event.amount,
                            captured_at=_aware(event.captured_at), appointment_id=appointment_id)


def _aware(instant: datetime) -> datetime:
    # The contract says UTC on the wire; a producer that drops the offset still means UTC.
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)


COMMANDS: Mapping[type[EventData], Callable[[Delivery], Any]] = {
    CaseAccepted: start_scheduling,
    CaseWithdrawn: record_withdrawal,
    PaymentCaptured: record_fee_payment,
}
