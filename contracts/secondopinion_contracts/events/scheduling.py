"""Events published by scheduling (routing keys `scheduling.<EventName>.v<N>`).

Times are aware datetimes (UTC on the wire; consultations happen in Asia/Tokyo business hours).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from secondopinion_contracts.base import EventData
from secondopinion_contracts.codes import CancellationReason, CancelledBy, Mode, RescheduleReason
from secondopinion_contracts.events.intake import DEPARTMENT_PATTERN

STAFF_ID = Field(min_length=1, max_length=100, description="Staff id of the physician (no name).")


class _SchedulingEvent(EventData):
    SERVICE: ClassVar[str] = "scheduling"
    case_id: UUID


class CandidateSlot(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    slot_id: UUID
    start: datetime
    end: datetime
    physician_id: str = STAFF_ID


class SlotsProposed(_SchedulingEvent):
    """The coordinator offered the patient one to three candidate dates; they are held for the case."""

    NAME: ClassVar[str] = "SlotsProposed"
    department: str = Field(pattern=DEPARTMENT_PATTERN)
    mode: Mode
    candidates: list[CandidateSlot] = Field(min_length=1, max_length=3)
    hold_expires_at: datetime


class SlotConfirmed(_SchedulingEvent):
    NAME: ClassVar[str] = "SlotConfirmed"
    appointment_id: UUID
    slot_id: UUID
    start: datetime
    end: datetime
    department: str = Field(pattern=DEPARTMENT_PATTERN)
    physician_id: str = STAFF_ID
    mode: Mode


class AppointmentSlipIssued(_SchedulingEvent):
    """In person: the appointment slip was posted to the patient."""

    NAME: ClassVar[str] = "AppointmentSlipIssued"
    appointment_id: UUID
    issued_on: date


class OnlineBookingRegistered(_SchedulingEvent):
    """Online: the patient booked the confirmed date on the telemedicine platform (CLINICS)."""

    NAME: ClassVar[str] = "OnlineBookingRegistered"
    appointment_id: UUID
    clinics_booking_ref: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


class AppointmentRescheduled(_SchedulingEvent):
    NAME: ClassVar[str] = "AppointmentRescheduled"
    appointment_id: UUID
    previous_slot_id: UUID
    slot_id: UUID
    start: datetime
    end: datetime
    physician_id: str = STAFF_ID
    reason: RescheduleReason


class AppointmentCancelled(_SchedulingEvent):
    NAME: ClassVar[str] = "AppointmentCancelled"
    appointment_id: UUID
    slot_id: UUID
    reason: CancellationReason
    cancelled_by: CancelledBy


class ConsultationCompleted(_SchedulingEvent):
    NAME: ClassVar[str] = "ConsultationCompleted"
    appointment_id: UUID
    mode: Mode
    department: str = Field(pattern=DEPARTMENT_PATTERN)
    physician_id: str = STAFF_ID
    completed_at: datetime


class PatientNoShow(_SchedulingEvent):
    NAME: ClassVar[str] = "PatientNoShow"
    appointment_id: UUID
    slot_id: UUID
    recorded_at: datetime


EVENTS: tuple[type[EventData], ...] = (
    SlotsProposed,
    SlotConfirmed,
    AppointmentSlipIssued,
    OnlineBookingRegistered,
    AppointmentRescheduled,
    AppointmentCancelled,
    ConsultationCompleted,
    PatientNoShow,
)
