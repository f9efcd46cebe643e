"""Report rules and the business-day calendar: given past events, when a command, then new events (pure)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date

import pytest

from eventkit.errors import CommandRejected
from eventkit.events import Event
from reporting import domain
from reporting.business_calendar import business_days_between, calendar_days, is_business_day
from reporting.commands import (
    AmendReport,
    DraftReport,
    FinalizeReport,
    NoteConsultation,
    NotePayment,
    NoteRefund,
    RecordDelivery,
)
from secondopinion_contracts.codes import AmendmentReason, DeliveryChannel, Mode
from secondopinion_contracts.events.reporting import (
    CaseClosed,
    ReportAmended,
    ReportDelivered,
    ReportDrafted,
    ReportFinalized,
)

CASE_ID = uuid.uuid4()
INVOICE_ID = uuid.uuid4()
CONSULTED_ON = date(2026, 12, 1)
LATER = date(2026, 12, 4)


def fold(events: list[Event], report: domain.OpinionReport | None = None) -> domain.OpinionReport:
    report = report or domain.OpinionReport()
    for event in events:
        report = domain.evolve(report, event)
    return report


def consulted(mode: Mode = Mode.IN_PERSON) -> domain.OpinionReport:
    command = NoteConsultation(CASE_ID, uuid.uuid4(), mode, CONSULTED_ON)
    return fold(domain.note_consultation(command, domain.OpinionReport()))


def drafted(mode: Mode = Mode.IN_PERSON) -> domain.OpinionReport:
    report = consulted(mode)
    return fold(domain.draft(DraftReport(CASE_ID, uuid.uuid4(), "dr-sato", "summary"), report), report)


def finalized(mode: Mode = Mode.IN_PERSON) -> domain.OpinionReport:
    report = drafted(mode)
    return fold(domain.finalize(FinalizeReport(CASE_ID), report, CONSULTED_ON), report)


def paid(report: domain.OpinionReport, invoice_id: uuid.UUID = INVOICE_ID) -> tuple[domain.OpinionReport, list[Event]]:
    events = domain.note_payment(NotePayment(CASE_ID, invoice_id, 33_000), report, LATER)
    return fold(events, report), events


def refunded(report: domain.OpinionReport, fully: bool, invoice_id: uuid.UUID = INVOICE_ID) -> domain.OpinionReport:
    return fold(domain.note_refund(NoteRefund(CASE_ID, invoice_id, 33_000 if fully else 3_000, fully), report), report)


def deliver(report: domain.OpinionReport, channel: DeliveryChannel,
            today: date = CONSULTED_ON) -> tuple[domain.OpinionReport, list[Event]]:
    events = domain.record_delivery(RecordDelivery(CASE_ID, channel), report, today)
    return fold(events, report), events


def rejected_code(call: Callable[[], object]) -> str:
    try:
        call()
    except CommandRejected as rejection:
        return rejection.code
    raise AssertionError("the command was not rejected")


def test_no_report_is_expected_before_the_consultation() -> None:
    command = DraftReport(CASE_ID, uuid.uuid4(), "dr-sato", "summary")
    assert rejected_code(lambda: domain.draft(command, domain.OpinionReport())) == "no_consultation"
    # A payment noted first (in person pays before the consultation) does not make a report expected.
    report, _ = paid(domain.OpinionReport())
    assert rejected_code(lambda: domain.draft(command, report)) == "no_consultation"


def test_redrafting_keeps_the_report_id_and_counts_drafts_until_final() -> None:
    report = drafted()
    first_id = report.report_id
    events = domain.draft(DraftReport(CASE_ID, uuid.uuid4(), "dr-tanaka", "better"), report)
    assert isinstance(events[0], ReportDrafted)
    assert events[0].report_id == first_id
    assert events[0].draft_number == 2
    assert fold(events, report).physician_id == "dr-tanaka"
    final = finalized()
    assert rejected_code(lambda: domain.draft(DraftReport(CASE_ID, uuid.uuid4(), "dr-x", "late"), final)) == \
        "report_finalized"


def test_finalizing_needs_a_draft_and_happens_once() -> None:
    assert rejected_code(lambda: domain.finalize(FinalizeReport(CASE_ID), consulted(), CONSULTED_ON)) == "no_draft"
    report = drafted()
    assert report.report_id is not None
    events = domain.finalize(FinalizeReport(CASE_ID), report, LATER)
    assert events == [ReportFinalized(case_id=CASE_ID, report_id=report.report_id, physician_id="dr-sato",
                                      finalized_on=LATER)]
    assert rejected_code(lambda: domain.finalize(FinalizeReport(CASE_ID), finalized(), LATER)) == "report_finalized"


def test_only_a_final_report_is_delivered_and_only_once() -> None:
    assert rejected_code(lambda: deliver(drafted(), DeliveryChannel.POSTED_TO_ATTENDING_PHYSICIAN)) == \
        "report_not_final"
    report, events = deliver(finalized(), DeliveryChannel.POSTED_TO_ATTENDING_PHYSICIAN, LATER)
    assert [event.NAME for event in events] == ["ReportDelivered"]
    assert rejected_code(lambda: deliver(report, DeliveryChannel.POSTED_TO_ATTENDING_PHYSICIAN, LATER)) == \
        "report_delivered"


def test_an_online_report_cannot_be_handed_over_it_is_always_posted() -> None:
    online = finalized(Mode.ONLINE)
    with pytest.raises(CommandRejected) as error:
        deliver(online, DeliveryChannel.HANDED_TO_PATIENT)
    assert error.value.code == "channel_not_allowed"
    assert "online" in error.value.message
    _, events = deliver(online, DeliveryChannel.POSTED_TO_ATTENDING_PHYSICIAN)
    assert isinstance(events[0], ReportDelivered)
    assert events[0].channel is DeliveryChannel.POSTED_TO_ATTENDING_PHYSICIAN


def test_in_person_it_is_handed_over_only_at_the_end_of_the_consultation_day() -> None:
    report = finalized(Mode.IN_PERSON)
    _, on_the_day = deliver(report, DeliveryChannel.HANDED_TO_PATIENT, CONSULTED_ON)
    assert isinstance(on_the_day[0], ReportDelivered)
    assert on_the_day[0].channel is DeliveryChannel.HANDED_TO_PATIENT
    assert rejected_code(lambda: deliver(report, DeliveryChannel.HANDED_TO_PATIENT, LATER)) == "channel_not_allowed"
    _, posted_later = deliver(report, DeliveryChannel.POSTED_TO_ATTENDING_PHYSICIAN, LATER)
    assert isinstance(posted_later[0], ReportDelivered)


def test_delivery_closes_the_case_when_the_fee_is_already_settled() -> None:
    report, _ = paid(finalized())
    closed, events = deliver(report, DeliveryChannel.HANDED_TO_PATIENT)
    assert [event.NAME for event in events] == ["ReportDelivered", "CaseClosed"]
    close = events[1]
    assert isinstance(close, CaseClosed)
    assert (close.mode, close.closed_on, close.report_id) == (Mode.IN_PERSON, CONSULTED_ON, report.report_id)
    assert closed.closed
    # A later payment (a second invoice) never closes it twice.
    _, again = paid(closed, uuid.uuid4())
    assert "CaseClosed" not in [event.NAME for event in again]


def test_a_payment_after_delivery_closes_the_case() -> None:
    report, _ = deliver(finalized(Mode.ONLINE), DeliveryChannel.POSTED_TO_ATTENDING_PHYSICIAN)
    assert not report.closed
    closed, events = paid(report)
    assert [event.NAME for event in events] == ["PaymentNoted", "CaseClosed"]
    assert closed.closed_on == LATER


def test_a_fully_refunded_fee_is_not_settled_even_if_the_refund_was_noted_before_the_capture() -> None:
    refunded_first = refunded(finalized(), fully=True)
    report, _ = paid(refunded_first)
    assert not report.fee_settled
    _, events = deliver(report, DeliveryChannel.HANDED_TO_PATIENT)
    assert [event.NAME for event in events] == ["ReportDelivered"]


def test_a_partial_refund_leaves_the_fee_settled() -> None:
    report, _ = paid(finalized())
    report = refunded(report, fully=False)
    assert report.fee_settled
    _, events = deliver(report, DeliveryChannel.HANDED_TO_PATIENT)
    assert [event.NAME for event in events] == ["ReportDelivered", "CaseClosed"]


def amend(report: domain.OpinionReport, today: date = LATER) -> tuple[domain.OpinionReport, list[Event]]:
    command = AmendReport(CASE_ID, "dr-kato", "amended summary", AmendmentReason.CORRECTION, "dose was mistyped")
    events = domain.amend(command, report, today)
    return fold(events, report), events


def test_only_a_final_report_is_amended_each_time_as_a_new_version() -> None:
    assert rejected_code(lambda: amend(drafted())) == "report_not_final"
    report = finalized()
    assert report.version == 1
    report, events = amend(report)
    assert events == [ReportAmended(case_id=CASE_ID, report_id=report.report_id, report_version=2,
                                    physician_id="dr-kato", reason=AmendmentReason.CORRECTION, amended_on=LATER)]
    assert (report.status, report.version, report.physician_id) == (domain.ReportStatus.FINALIZED, 2, "dr-kato")
    report, events = amend(report)
    assert isinstance(events[0], ReportAmended)
    assert events[0].report_version == 3
    assert rejected_code(lambda: domain.draft(DraftReport(CASE_ID, uuid.uuid4(), "dr-sato", "x"), report)) == \
        "report_finalized", "an amended report is not redrafted"


def test_an_amendment_after_delivery_is_delivered_again_naming_its_version() -> None:
    report, _ = paid(finalized())
    report, first = deliver(report, DeliveryChannel.HANDED_TO_PATIENT)
    assert [type(e) for e in first] == [ReportDelivered, CaseClosed]
    assert isinstance(first[0], ReportDelivered)
    assert first[0].report_version == 1
    report, _ = amend(report)
    assert report.delivered, "the case keeps its delivered report while the amendment waits"
    assert report.delivered_version == 1
    # Handed over only on the consultation day: later the amendment is posted, as any late report is.
    assert rejected_code(lambda: deliver(report, DeliveryChannel.HANDED_TO_PATIENT, LATER)) == "channel_not_allowed"
    report, again = deliver(report, DeliveryChannel.POSTED_TO_ATTENDING_PHYSICIAN, LATER)
    assert again == [ReportDelivered(case_id=CASE_ID, report_id=report.report_id,
                                     channel=DeliveryChannel.POSTED_TO_ATTENDING_PHYSICIAN, delivered_on=LATER,
                                     report_version=2)], "the case was closed once, by the first delivery"
    assert report.delivered_version == 2
    assert rejected_code(lambda: deliver(report, DeliveryChannel.POSTED_TO_ATTENDING_PHYSICIAN, LATER)) == \
        "report_delivered"


def test_a_delivery_recorded_before_versions_existed_is_of_version_1() -> None:
    report = finalized()
    legacy = ReportDelivered.model_validate({"case_id": str(CASE_ID), "report_id": str(report.report_id),
                                             "channel": "handed_to_patient", "delivered_on": "2026-12-01"})
    assert fold([legacy], report).delivered_version == 1


def test_a_refund_never_closes_a_case() -> None:
    report, _ = deliver(finalized(), DeliveryChannel.HANDED_TO_PATIENT)
    events = domain.note_refund(NoteRefund(CASE_ID, INVOICE_ID, 1_000, False), report)
    assert [event.NAME for event in events] == ["RefundNoted"]


@pytest.mark.parametrize(("day", "business"), [
    (date(2026, 12, 1), True),     # Tuesday
    (date(2026, 12, 5), False),    # Saturday
    (date(2026, 12, 6), False),    # Sunday
    (date(2026, 11, 23), False),   # Labour Thanksgiving Day (Monday)
    (date(2026, 5, 6), False),     # substitute holiday of Golden Week
    (date(2026, 12, 29), False),   # year-end closure starts on a Tuesday
    (date(2027, 1, 4), True),      # first business day of 2027
    (date(2027, 1, 1), False),
])
def test_business_days_are_weekdays_outside_holidays_and_the_year_end_closure(day: date, business: bool) -> None:
    assert is_business_day(day) is business


def test_business_days_between_counts_the_days_after_the_start_up_to_the_end() -> None:
    assert business_days_between(date(2026, 12, 1), date(2026, 12, 1)) == 0
    assert business_days_between(date(2026, 12, 1), date(2026, 12, 2)) == 1
    assert business_days_between(date(2026, 12, 4), date(2026, 12, 7)) == 1    # Friday -> Monday
    assert business_days_between(date(2026, 12, 25), date(2027, 1, 5)) == 3    # 28 Dec, 4 Jan, 5 Jan
    assert business_days_between(date(2026, 11, 20), date(2026, 11, 24)) == 1  # over a holiday Monday


def test_calendar_ordinals_give_the_same_counts() -> None:
    days = {day.day: day for day in calendar_days(date(2026, 1, 1), date(2027, 12, 31))}
    for start, end in [(date(2026, 12, 25), date(2027, 1, 5)), (date(2026, 4, 28), date(2026, 5, 11))]:
        assert days[end].ordinal - days[start].ordinal == business_days_between(start, end)
