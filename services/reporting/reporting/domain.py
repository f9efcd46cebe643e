"""The OpinionReport aggregate (one stream per case): decide(command, state) -> events, evolve. Pure.

Rules (docs/domain.md, the report):
- a report is expected once the consultation was completed; the physician drafts it (again and again)
  until it is final;
- the desk records how the final report was delivered: handed to the patient (in person only, at the
  end of the consultation, so on the consultation day) or posted to the attending physician (in person
  later, and always for online consultations);
- when the report is delivered and the fee is settled (captured and not fully refunded), the case is
  closed, exactly once.

The facts that come from other services (consultation, payment, refund) are noted in the same stream as
private events, so every close decision is taken on one stream under its optimistic concurrency: the
delivery command and a payment arriving at the same moment cannot both miss (or both record) the close.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum
from typing import ClassVar
from uuid import UUID

from pydantic import Field

from eventkit.errors import CommandRejected
from eventkit.events import Event, PrivateEvent
from reporting.commands import DraftReport, FinalizeReport, NoteConsultation, NotePayment, NoteRefund, RecordDelivery
from secondopinion_contracts.codes import DeliveryChannel, Mode
from secondopinion_contracts.events.reporting import CaseClosed, ReportDelivered, ReportDrafted, ReportFinalized


class ConsultationNoted(PrivateEvent):
    """Scheduling completed the consultation: a report is now expected, in this mode."""

    NAME: ClassVar[str] = "ConsultationNoted"
    case_id: UUID
    appointment_id: UUID
    mode: Mode
    consulted_on: date


class PaymentNoted(PrivateEvent):
    """Billing captured (part of) the fee of an invoice."""

    NAME: ClassVar[str] = "PaymentNoted"
    case_id: UUID
    invoice_id: UUID
    amount: int = Field(gt=0)


class RefundNoted(PrivateEvent):
    """Billing refunded (part of) an invoice; `fully_refunded` means nothing of it is kept."""

    NAME: ClassVar[str] = "RefundNoted"
    case_id: UUID
    invoice_id: UUID
    amount: int = Field(gt=0)
    fully_refunded: bool


PRIVATE_EVENTS: tuple[type[PrivateEvent], ...] = (ConsultationNoted, PaymentNoted, RefundNoted)


class ReportStatus(StrEnum):
    NOT_STARTED = "not_started"
    DRAFTED = "drafted"
    FINALIZED = "finalized"
    DELIVERED = "delivered"


@dataclass(frozen=True)
class OpinionReport:
    status: ReportStatus = ReportStatus.NOT_STARTED
    report_id: UUID | None = None
    draft_number: int = 0
    physician_id: str | None = None
    consultation_mode: Mode | None = None
    consulted_on: date | None = None
    finalized_on: date | None = None
    delivery_channel: DeliveryChannel | None = None
    delivered_on: date | None = None
    captured_invoices: frozenset[UUID] = frozenset()
    fully_refunded_invoices: frozenset[UUID] = frozenset()
    closed_on: date | None = None

    @property
    def expected(self) -> bool:
        """A consultation took place, so the case needs a report."""
        return self.consultation_mode is not None

    @property
    def fee_settled(self) -> bool:
        # Per invoice, so a refund noted before its capture (events reorder across services) still counts.
        return bool(self.captured_invoices - self.fully_refunded_invoices)

    @property
    def delivered(self) -> bool:
        return self.status is ReportStatus.DELIVERED

    @property
    def closed(self) -> bool:
        return self.closed_on is not None


def draft(command: DraftReport, report: OpinionReport) -> list[Event]:
    if not report.expected:
        raise CommandRejected("no consultation has been completed for this case, so no report is expected yet",
                              code="no_consultation")
    if report.status in (ReportStatus.FINALIZED, ReportStatus.DELIVERED):
        raise CommandRejected(f"the report is already {report.status.value}: it can no longer be redrafted",
                              code=f"report_{report.status.value}")
    return [ReportDrafted(case_id=command.case_id, report_id=report.report_id or command.report_id,
                          physician_id=command.physician_id, draft_number=report.draft_number + 1)]


def finalize(command: FinalizeReport, report: OpinionReport, today: date) -> list[Event]:
    if report.status is ReportStatus.NOT_STARTED:
        raise CommandRejected("there is no draft to finalize", code="no_draft")
    if report.status is not ReportStatus.DRAFTED:
        raise CommandRejected(f"the report is already {report.status.value}", code=f"report_{report.status.value}")
    assert report.report_id is not None
    assert report.physician_id is not None
    return [ReportFinalized(case_id=command.case_id, report_id=report.report_id, physician_id=report.physician_id,
                            finalized_on=today)]


def channel_refusal(report: OpinionReport, channel: DeliveryChannel, today: date) -> str | None:
    """Why the report may not go out through `channel` today, or None."""
    if channel is not DeliveryChannel.HANDED_TO_PATIENT:
        return None
    if report.consultation_mode is Mode.ONLINE:
        return "an online consultation's report is always posted to the attending physician; it cannot be handed over"
    if report.consulted_on != today:
        return (f"a report is handed to the patient only at the end of the consultation ({report.consulted_on}); "
                "later it is posted to the attending physician")
    return None


def record_delivery(command: RecordDelivery, report: OpinionReport, today: date) -> list[Event]:
    if report.status in (ReportStatus.NOT_STARTED, ReportStatus.DRAFTED):
        raise CommandRejected("only a finalized report can be delivered", code="report_not_final")
    if report.status is ReportStatus.DELIVERED:
        raise CommandRejected(f"the report was already delivered ({report.delivery_channel}, {report.delivered_on})",
                              code="report_delivered")
    refusal = channel_refusal(report, command.channel, today)
    if refusal:
        raise CommandRejected(refusal, code="channel_not_allowed")
    assert report.report_id is not None
    delivered = ReportDelivered(case_id=command.case_id, report_id=report.report_id, channel=command.channel,
                                delivered_on=today)
    return [delivered, *_close_if_done(command.case_id, evolve(report, delivered), today)]


def note_consultation(command: NoteConsultation, report: OpinionReport) -> list[Event]:
    return [ConsultationNoted(case_id=command.case_id, appointment_id=command.appointment_id, mode=command.mode,
                              consulted_on=command.consulted_on)]


def note_payment(command: NotePayment, report: OpinionReport, today: date) -> list[Event]:
    noted = PaymentNoted(case_id=command.case_id, invoice_id=command.invoice_id, amount=command.amount)
    return [noted, *_close_if_done(command.case_id, evolve(report, noted), today)]


def note_refund(command: NoteRefund, report: OpinionReport) -> list[Event]:
    # A refund never closes a case: it can only unsettle the fee.
    return [RefundNoted(case_id=command.case_id, invoice_id=command.invoice_id, amount=command.amount,
                        fully_refunded=command.fully_refunded)]


def _close_if_done(case_id: UUID, report: OpinionReport, today: date) -> list[Event]:
    if report.closed or not report.delivered or not report.fee_settled:
        return []
    assert report.report_id is not None
    assert report.consultation_mode is not None
    return [CaseClosed(case_id=case_id, report_id=report.report_id, mode=report.consultation_mode, closed_on=today)]


def evolve(report: OpinionReport, event: Event) -> OpinionReport:
    match event:
        case ConsultationNoted():
            return replace(report, consultation_mode=event.mode, consulted_on=event.consulted_on)
        case PaymentNoted():
            return replace(report, captured_invoices=report.captured_invoices | {event.invoice_id})
        case RefundNoted() if event.fully_refunded:
            return replace(report, fully_refunded_invoices=report.fully_refunded_invoices | {event.invoice_id})
        case ReportDrafted():
            return replace(report, status=ReportStatus.DRAFTED, report_id=event.report_id,
                           draft_number=event.draft_number, physician_id=event.physician_id)
        case ReportFinalized():
            return replace(report, status=ReportStatus.FINALIZED, finalized_on=event.finalized_on)
        case ReportDelivered():
            return replace(report, status=ReportStatus.DELIVERED, delivery_channel=event.channel,
                           delivered_on=event.delivered_on)
        case CaseClosed():
            return replace(report, closed_on=event.closed_on)
    return report
