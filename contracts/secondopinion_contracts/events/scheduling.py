"""Events published by scheduling (routing keys `scheduling.<EventName>.v<N>`).

Times are instants in UTC on the wire (consultations happen in Asia/Tokyo business hours); dates are
calendar dates in Asia/Tokyo.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from secondopinion_contracts.base import EventData
from secondopinion_contracts.codes import CancellationReason, CancelledBy, Department, Mode, RescheduleReason
from secondopinion_contracts.fields import AppointmentId, CaseId, SlotId, StaffId, tokyo_date, utc_instant

MODE = Field(description="In person at the hospital, or online through the telemedicine platform.")
DEPARTMENT = Field(description="The department of the case (the one intake accepted it for).")


class _SchedulingEvent(EventData):
    SERVICE: ClassVar[str] = "scheduling"
    case_id: CaseId


class CandidateSlot(BaseModel):
    """A date offered to the patient."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    slot_id: SlotId
    start: datetime = utc_instant("When the consultation would start")
    end: datetime = utc_instant("When it would end")
    physician_id: StaffId


class SlotsProposed(_SchedulingEvent):
    """The coordinator offered the patient one to three candidate dates; they are held for the case."""

    NAME: ClassVar[str] = "SlotsProposed"
    department: Department = DEPARTMENT
    mode: Mode = MODE
    candidates: list[CandidateSlot] = Field(min_length=1, max_length=3, description="The dates offered, one to three.")
    hold_expires_at: datetime = utc_instant("Until when the candidates are held for the case")


class SlotConfirmed(_SchedulingEvent):
    """The patient chose a date: the appointment exists from here on."""

    NAME: ClassVar[str] = "SlotConfirmed"
    appointment_id: AppointmentId
    slot_id: SlotId
    start: datetime = utc_instant("When the consultation starts")
    end: datetime = utc_instant("When it ends")
    department: Department = DEPARTMENT
    physician_id: StaffId
    mode: Mode = MODE


class AppointmentSlipIssued(_SchedulingEvent):
    """In person: the appointment slip was posted to the patient."""

    NAME: ClassVar[str] = "AppointmentSlipIssued"
    appointment_id: AppointmentId
    issued_on: date = tokyo_date("When the slip was issued")


class OnlineBookingRegistered(_SchedulingEvent):
    """Online: the patient booked the confirmed date on the telemedicine platform (CLINICS)."""

    NAME: ClassVar[str] = "OnlineBookingRegistered"
    appointment_id: AppointmentId
    clinics_booking_ref: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$",
                                     description="The booking's reference on the telemedicine platform.")


class AppointmentRescheduled(_SchedulingEvent):
    """The appointment moved to another slot; the earlier slot is free again."""

    NAME: ClassVar[str] = "AppointmentRescheduled"
    appointment_id: AppointmentId
    previous_slot_id: SlotId
    slot_id: SlotId
    start: datetime = utc_instant("When the consultation now starts")
    end: datetime = utc_instant("When it now ends")
    physician_id: StaffId
    reason: RescheduleReason = Field(description="Why it moved.")


class AppointmentCancelled(_SchedulingEvent):
    """The appointment was cancelled; the case may be given new dates or be withdrawn."""

    NAME: ClassVar[str] = "AppointmentCancelled"
    appointment_id: AppointmentId
    slot_id: SlotId
    reason: CancellationReason = Field(description="Why it was cancelled.")
    cancelled_by: CancelledBy = Field(description="Who cancelled: the patient or the hospital.")


class ConsultationCompleted(_SchedulingEvent):
    """The consultation took place: reporting starts the report."""

    NAME: ClassVar[str] = "ConsultationCompleted"
    appointment_id: AppointmentId
    mode: Mode = MODE
    department: Department = DEPARTMENT
    physician_id: StaffId
    completed_at: datetime = utc_instant("When the consultation ended")


class PatientNoShow(_SchedulingEvent):
    """The patient did not come to the appointment."""

    NAME: ClassVar[str] = "PatientNoShow"
    appointment_id: AppointmentId
    slot_id: SlotId
    recorded_at: datetime = utc_instant("When the no-show was recorded")


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
