"""One example message per published event version, as its owning service would publish it.

They follow one in-person case (and one declined, one withdrawn) so that the ids show how the case, its
appointment, invoice and report are linked. Rendered into the AsyncAPI document and into published/examples/
by `make contracts`; tests validate each against its schema with two validators and the CloudEvents SDK.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from uuid import UUID, uuid5

from secondopinion_contracts import codes
from secondopinion_contracts.base import EventData
from secondopinion_contracts.envelope import CloudEvent
from secondopinion_contracts.events import billing, intake, reporting, scheduling

_NAMESPACE = UUID("6d1e4b7a-3c1f-4a55-9a43-2f0f0c8e5d10")
CASE = UUID("0b5e7f2c-8a41-4d7e-9c3b-5f1a2e6d8c90")
DECLINED_CASE = UUID("1c6f8a3d-9b52-4e8f-8d4c-6a2b3f7e9da1")
APPOINTMENT = UUID("2d7a9b4e-ac63-4f90-9e5d-7b3c4a8fae02")
INVOICE = UUID("3e8bac5f-bd74-4a01-8f6e-8c4d5b9a0f13")
REPORT = UUID("4f9cbd6a-ce85-4b12-9a7f-9d5e6c0b1a24")
SLOT = UUID("5a0dce7b-df96-4c23-8b80-ae6f7d1c2b35")
OTHER_SLOT = UUID("6b1edf8c-e0a7-4d34-9c91-bf708e2d3c46")
START = datetime(2027, 1, 14, 1, 0, tzinfo=UTC)  # 10:00 in Tokyo
END = datetime(2027, 1, 14, 1, 30, tzinfo=UTC)

DATA: tuple[EventData, ...] = (
    intake.CaseSubmitted(case_id=CASE, mode=codes.Mode.IN_PERSON, department="cardiology",
                         requester_relationship=codes.Relationship.FAMILY, patient_is_minor=False,
                         patient_deceased=False, attending_physician_consents=True, wants_treatment_here=False,
                         complaint_or_litigation=False, submitted_on=date(2026, 12, 21),
                         payer_name_sealed="q1Jt0dC3w9yXwz8mY0bN4g", case_number="SO-2026-00123"),
    intake.DocumentReceived(case_id=CASE, document_id=uuid5(_NAMESPACE, "referral letter"),
                            kind=codes.DocumentKind.REFERRAL_LETTER, received_on=date(2026, 12, 22)),
    intake.ConsentVerified(case_id=CASE, basis=codes.ConsentBasis.CONSENT_FORM),
    intake.CaseAccepted(case_id=CASE, department=codes.Department.CARDIOLOGY, mode=codes.Mode.IN_PERSON,
                        screened_by="dr-0412"),
    intake.CaseDeclined(case_id=DECLINED_CASE, reasons=[codes.RefusalReason.SEEKS_TREATMENT_HERE,
                                                        codes.RefusalReason.REFER_TO_GENERAL_OUTPATIENT],
                        declined_by="intake"),
    intake.CaseDeclinedV2(case_id=DECLINED_CASE, reasons=[codes.DeclineReason.SEEKS_TREATMENT_HERE],
                          recommendation=codes.Recommendation.GENERAL_OUTPATIENT, screening=codes.Screening.AUTOMATIC),
    intake.CaseWithdrawn(case_id=uuid5(_NAMESPACE, "withdrawn case"), reason=codes.WithdrawalReason.PATIENT_REQUEST),
    intake.PersonalDataErased(case_id=CASE, erased_on=date(2032, 4, 1)),
    intake.CaseDetailsCorrected(case_id=CASE, correction_id=uuid5(_NAMESPACE, "correction"),
                                fields=[codes.CorrectedField.PATIENT_NAME, codes.CorrectedField.PATIENT_BIRTH_DATE],
                                reason=codes.CorrectionReason.TYPING_ERROR, corrected_on=date(2026, 12, 22),
                                patient_is_minor=False),
    intake.ContactRecorded(case_id=CASE, contact_id=uuid5(_NAMESPACE, "contact"), contacted_on=date(2026, 12, 23),
                           direction=codes.ContactDirection.OUTGOING, channel=codes.ContactChannel.PHONE,
                           handled_by="coord-0107"),
    scheduling.SlotsProposed(case_id=CASE, department=codes.Department.CARDIOLOGY, mode=codes.Mode.IN_PERSON,
                             candidates=[scheduling.CandidateSlot(slot_id=SLOT, start=START, end=END,
                                                                  physician_id="dr-0412")],
                             hold_expires_at=datetime(2027, 1, 7, 8, 0, tzinfo=UTC)),
    scheduling.SlotConfirmed(case_id=CASE, appointment_id=APPOINTMENT, slot_id=SLOT, start=START, end=END,
                             department=codes.Department.CARDIOLOGY, physician_id="dr-0412",
                             mode=codes.Mode.IN_PERSON),
    scheduling.AppointmentSlipIssued(case_id=CASE, appointment_id=APPOINTMENT, issued_on=date(2027, 1, 6)),
    scheduling.OnlineBookingRegistered(case_id=CASE, appointment_id=APPOINTMENT,
                                       clinics_booking_ref="CL-20270114-0042"),
    scheduling.AppointmentRescheduled(case_id=CASE, appointment_id=APPOINTMENT, previous_slot_id=OTHER_SLOT,
                                      slot_id=SLOT, start=START, end=END, physician_id="dr-0412",
                                      reason=codes.RescheduleReason.PATIENT_REQUEST),
    scheduling.AppointmentCancelled(case_id=CASE, appointment_id=APPOINTMENT, slot_id=SLOT,
                                    reason=codes.CancellationReason.PATIENT_UNWELL,
                                    cancelled_by=codes.CancelledBy.PATIENT),
    scheduling.ConsultationCompleted(case_id=CASE, appointment_id=APPOINTMENT, mode=codes.Mode.IN_PERSON,
                                     department=codes.Department.CARDIOLOGY, physician_id="dr-0412",
                                     completed_at=datetime(2027, 1, 14, 1, 35, tzinfo=UTC)),
    scheduling.PatientNoShow(case_id=CASE, appointment_id=APPOINTMENT, slot_id=SLOT,
                             recorded_at=datetime(2027, 1, 14, 2, 0, tzinfo=UTC)),
    billing.InvoiceIssued(case_id=CASE, invoice_id=INVOICE, appointment_id=APPOINTMENT, mode=codes.Mode.IN_PERSON,
                          amount_excl_tax=40000, tax=4000, total=44000, tax_rate_percent=10,
                          payment_channel=codes.PaymentChannel.COUNTER_BEFORE_CONSULTATION,
                          fee_schedule_effective_from=date(2026, 4, 1)),
    billing.InvoiceVoided(case_id=CASE, invoice_id=INVOICE, reason=codes.InvoiceVoidReason.APPOINTMENT_CANCELLED),
    billing.PaymentCaptured(case_id=CASE, invoice_id=INVOICE, amount=44000, method=codes.PaymentMethod.CARD,
                            captured_at=datetime(2027, 1, 14, 0, 40, tzinfo=UTC), appointment_id=APPOINTMENT),
    billing.PaymentFailed(case_id=CASE, invoice_id=INVOICE, amount=44000,
                          reason=codes.PaymentFailureReason.CARD_DECLINED, attempt=1),
    billing.RefundIssued(case_id=CASE, invoice_id=INVOICE, refund_id=uuid5(_NAMESPACE, "refund"), amount=44000,
                         reason=codes.RefundReason.CANCELLED_BY_HOSPITAL, refunded_total=44000, fully_refunded=True,
                         refunded_at=datetime(2027, 1, 15, 5, 0, tzinfo=UTC)),
    billing.ReceiptIssued(case_id=CASE, invoice_id=INVOICE, receipt_number="R2027-000042", issued_on=date(2027, 1, 14),
                          total=44000, tax=4000, qualified_invoice_registration_number="T1234567890123"),
    reporting.ReportDrafted(case_id=CASE, report_id=REPORT, physician_id="dr-0412", draft_number=1),
    reporting.ReportFinalized(case_id=CASE, report_id=REPORT, physician_id="dr-0412", finalized_on=date(2027, 1, 20)),
    reporting.ReportAmended(case_id=CASE, report_id=REPORT, report_version=2, physician_id="dr-0412",
                            reason=codes.AmendmentReason.NEW_INFORMATION, amended_on=date(2027, 1, 21)),
    reporting.ReportDelivered(case_id=CASE, report_id=REPORT, channel=codes.DeliveryChannel.HANDED_TO_PATIENT,
                              delivered_on=date(2027, 1, 22)),
    reporting.CaseClosed(case_id=CASE, report_id=REPORT, mode=codes.Mode.IN_PERSON, closed_on=date(2027, 1, 22)),
)


def example(data: EventData, stream_version: int = 3) -> CloudEvent:
    """The envelope `data` travels in, with ids derived from its type (stable across regenerations)."""
    case = str(data.case_id)  # type: ignore[attr-defined]  # every published event is about a case
    successor = {"secondopinion.intake.CaseDeclined.v1": "secondopinion.intake.CaseDeclined.v2"}.get(data.type_name())
    return CloudEvent(
        id=uuid5(_NAMESPACE, data.type_name()), source=f"/secondopinion/{data.SERVICE}", type=data.type_name(),
        subject=case, time=datetime(2027, 1, 14, 1, 35, 12, 345000, tzinfo=UTC), dataschema=data.schema_uri(),
        data=data.model_dump(mode="json"), sequence=stream_version, streamversion=stream_version,
        correlationid=case, causationid=f"command:{uuid5(_NAMESPACE, data.NAME)}",
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", supersededby=successor,
        actorid="coord-12", actorrole="coordinator")


EXAMPLES: dict[type[EventData], CloudEvent] = {type(data): example(data) for data in DATA}
