"""A complete case's contract events as the owning services would publish them, for backlogs and bulk loads."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from uuid import UUID

from secondopinion_contracts import EventData
from secondopinion_contracts.codes import (
    ConsentBasis,
    DocumentKind,
    Mode,
    PaymentChannel,
    PaymentMethod,
    Relationship,
)
from secondopinion_contracts.events.billing import InvoiceIssued, PaymentCaptured
from secondopinion_contracts.events.intake import (
    CaseAccepted,
    CaseSubmitted,
    ConsentVerified,
    DocumentReceived,
)
from secondopinion_contracts.events.scheduling import (
    AppointmentSlipIssued,
    CandidateSlot,
    ConsultationCompleted,
    SlotConfirmed,
    SlotsProposed,
)

DEPARTMENTS = ("cardiology", "oncology", "neurology", "hematology", "gastroenterology", "nephrology")
FEE_EXCL_TAX = 30_000
TAX = 3_000


def case_accepted(case_id: UUID | None = None, department: str = "cardiology") -> CaseAccepted:
    return CaseAccepted(case_id=case_id or uuid.uuid4(), department=department, mode=Mode.IN_PERSON,
                        screened_by="physician-1")


def slot_confirmed(case_id: UUID | None = None, start: datetime | None = None,
                   department: str = "cardiology") -> SlotConfirmed:
    start = start or datetime.fromisoformat("2031-04-01T01:00:00+00:00")
    return SlotConfirmed(case_id=case_id or uuid.uuid4(), appointment_id=uuid.uuid4(), slot_id=uuid.uuid4(),
                         start=start, end=start + timedelta(minutes=60), department=department,
                         physician_id="physician-1", mode=Mode.IN_PERSON)


def case_flow(case_id: UUID, submitted_on: date, department: str) -> list[EventData]:
    """The in-person flow from submission to the consultation, in the order the desk produces it (11 events)."""
    start = datetime.combine(submitted_on + timedelta(days=14), datetime.min.time()).astimezone() + timedelta(hours=1)
    confirmed = slot_confirmed(case_id, start, department)
    invoice_id = uuid.uuid4()
    return [
        CaseSubmitted(case_id=case_id, mode=Mode.IN_PERSON, department=department,
                      requester_relationship=Relationship.SELF, patient_is_minor=False, patient_deceased=False,
                      attending_physician_consents=True, wants_treatment_here=False, complaint_or_litigation=False,
                      submitted_on=submitted_on),
        DocumentReceived(case_id=case_id, document_id=uuid.uuid4(), kind=DocumentKind.APPLICATION_FORM,
                         received_on=submitted_on),
        DocumentReceived(case_id=case_id, document_id=uuid.uuid4(), kind=DocumentKind.REFERRAL_LETTER,
                         received_on=submitted_on),
        ConsentVerified(case_id=case_id, basis=ConsentBasis.REQUESTER_IS_PATIENT),
        case_accepted(case_id, department),
        SlotsProposed(case_id=case_id, department=department, mode=Mode.IN_PERSON,
                      candidates=[CandidateSlot(slot_id=confirmed.slot_id, start=confirmed.start, end=confirmed.end,
                                                physician_id=confirmed.physician_id)],
                      hold_expires_at=start - timedelta(days=7)),
        confirmed,
        AppointmentSlipIssued(case_id=case_id, appointment_id=confirmed.appointment_id, issued_on=submitted_on),
        InvoiceIssued(case_id=case_id, invoice_id=invoice_id, appointment_id=confirmed.appointment_id,
                      mode=Mode.IN_PERSON, amount_excl_tax=FEE_EXCL_TAX, tax=TAX, total=FEE_EXCL_TAX + TAX,
                      tax_rate_percent=10, payment_channel=PaymentChannel.COUNTER_BEFORE_CONSULTATION,
                      fee_schedule_effective_from=date(2024, 4, 1)),
        PaymentCaptured(case_id=case_id, invoice_id=invoice_id, amount=FEE_EXCL_TAX + TAX, method=PaymentMethod.CASH,
                        captured_at=start - timedelta(hours=1), appointment_id=confirmed.appointment_id),
        ConsultationCompleted(case_id=case_id, appointment_id=confirmed.appointment_id, mode=Mode.IN_PERSON,
                              department=department, physician_id="physician-1",
                              completed_at=start + timedelta(minutes=55)),
    ]


EVENTS_PER_CASE = 11


def sequences(events: list[EventData]) -> list[int]:
    """Each event's version in its owning service's stream for the case (1, 2, ... per service)."""
    seen: dict[str, int] = {}
    numbers = []
    for event in events:
        seen[event.SERVICE] = seen.get(event.SERVICE, 0) + 1
        numbers.append(seen[event.SERVICE])
    return numbers
