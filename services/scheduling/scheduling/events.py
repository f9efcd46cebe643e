"""Events scheduling keeps to itself: stored in its event store, never published.

Slot streams hold only these (a slot's life is the desk's internal bookkeeping); case-schedule streams
mix them with the published contract events of contracts/secondopinion_contracts/events/scheduling.py.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar
from uuid import UUID

from pydantic import AwareDatetime, Field

from eventkit.events import PrivateEvent
from secondopinion_contracts.codes import Mode, WithdrawalReason
from secondopinion_contracts.events.intake import DEPARTMENT_PATTERN

PHYSICIAN_ID = Field(min_length=1, max_length=100)


class HoldReleaseReason(StrEnum):
    PROPOSAL_REPLACED = "proposal_replaced"
    OTHER_SLOT_CONFIRMED = "other_slot_confirmed"
    CASE_WITHDRAWN = "case_withdrawn"


class SlotFreeReason(StrEnum):
    RESCHEDULED = "rescheduled"
    CANCELLED = "cancelled"


class SlotOpened(PrivateEvent):
    """A physician's consultation slot was opened in a department's schedule (times in UTC)."""

    NAME: ClassVar[str] = "SlotOpened"
    slot_id: UUID
    department: str = Field(pattern=DEPARTMENT_PATTERN)
    physician_id: str = PHYSICIAN_ID
    start: AwareDatetime
    end: AwareDatetime


class SlotHeld(PrivateEvent):
    """The slot was proposed to a case and is kept for it until the hold expires."""

    NAME: ClassVar[str] = "SlotHeld"
    slot_id: UUID
    case_id: UUID
    hold_expires_at: AwareDatetime


class SlotHoldReleased(PrivateEvent):
    NAME: ClassVar[str] = "SlotHoldReleased"
    slot_id: UUID
    case_id: UUID
    reason: HoldReleaseReason


class SlotBooked(PrivateEvent):
    NAME: ClassVar[str] = "SlotBooked"
    slot_id: UUID
    case_id: UUID
    appointment_id: UUID


class SlotFreed(PrivateEvent):
    """The appointment in the slot moved elsewhere or was cancelled: the slot is open again."""

    NAME: ClassVar[str] = "SlotFreed"
    slot_id: UUID
    case_id: UUID
    appointment_id: UUID
    reason: SlotFreeReason


class SchedulingStarted(PrivateEvent):
    """Intake accepted the case: it waits for candidate dates in its department."""

    NAME: ClassVar[str] = "SchedulingStarted"
    case_id: UUID
    department: str = Field(pattern=DEPARTMENT_PATTERN)
    mode: Mode


class FeePaymentRecorded(PrivateEvent):
    """Billing captured the fee for the case (in person it must be paid before the consultation)."""

    NAME: ClassVar[str] = "FeePaymentRecorded"
    case_id: UUID
    invoice_id: UUID
    amount: int = Field(gt=0)
    captured_at: AwareDatetime
    appointment_id: UUID | None = None


class CaseWithdrawalRecorded(PrivateEvent):
    """Intake withdrew the case: nothing more is proposed or booked for it."""

    NAME: ClassVar[str] = "CaseWithdrawalRecorded"
    case_id: UUID
    reason: WithdrawalReason


SLOT_EVENTS: tuple[type[PrivateEvent], ...] = (SlotOpened, SlotHeld, SlotHoldReleased, SlotBooked, SlotFreed)
CASE_PRIVATE_EVENTS: tuple[type[PrivateEvent], ...] = (SchedulingStarted, FeePaymentRecorded, CaseWithdrawalRecorded)
