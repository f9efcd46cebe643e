"""Test support: reporting running on the real broker and database, fed with the other services' contract
events (published on the bus as their owning services would), and a scripted set of cases with known KPIs."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import aio_pika
import httpx

from eventkit.clock import TOKYO
from eventkit.runtime import wait_until
from eventkit.testing import AsOwners, SettableClock, bearer, fetch, make_envelope, running_app, scalar
from eventkit.unit_of_work import UnitOfWork
from reporting.bootstrap import build
from reporting.settings import ReportingSettings
from secondopinion_contracts import CloudEvent, EventData
from secondopinion_contracts.codes import (
    CancellationReason,
    CancelledBy,
    ConsentBasis,
    DeclineReason,
    DocumentKind,
    Mode,
    PaymentChannel,
    PaymentFailureReason,
    PaymentMethod,
    Recommendation,
    RefundReason,
    RefusalReason,
    Relationship,
    RescheduleReason,
    Screening,
    WithdrawalReason,
)
from secondopinion_contracts.events import billing, intake, scheduling
from secondopinion_contracts.events.reporting import ReportAmended

PHYSICIAN = bearer("physician", subject="dr-sato")
COORDINATOR = bearer("coordinator", subject="coord-7")
FEES = {Mode.IN_PERSON: (30_000, 3_000), Mode.ONLINE: (40_000, 4_000)}




def reporting_settings(database: str, rabbitmq_url: str, **extra: Any) -> ReportingSettings:
    return ReportingSettings(REPORTING_DATABASE_URL=database, RABBITMQ_URL=rabbitmq_url, OUTBOX_SWEEP_SECONDS=0.2,
                             **extra)


@asynccontextmanager
async def reporting_app(database: str, rabbitmq_url: str, clock: SettableClock) -> AsyncIterator[httpx.AsyncClient]:
    # The desk's own view by default; commands pass the physician's or coordinator's token.
    async with running_app(build(reporting_settings(database, rabbitmq_url), clock=clock),
                           headers=COORDINATOR) as client:
        yield client


class Bus:
    """Publishes envelopes on the events exchange, each as its owning service (with publisher confirms)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._owners = AsOwners(url)

    async def __aenter__(self) -> Bus:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._owners.close()

    async def publish(self, envelopes: Iterable[CloudEvent]) -> None:
        for envelope in envelopes:
            await self._owners.publish(
                aio_pika.Message(body=envelope.to_json_bytes(), message_id=str(envelope.id),
                                 content_type="application/cloudevents+json",
                                 delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                envelope.routing_key)


async def wait_logged(database: str, event_ids: Iterable[uuid.UUID], timeout: float = 20.0) -> None:
    """Until reporting has every one of these events in its log."""
    wanted = sorted(set(event_ids))

    async def all_logged() -> bool:
        count = await scalar(database, "SELECT count(*) FROM received_events WHERE event_id = ANY($1)", wanted)
        return bool(count == len(wanted))

    await wait_until(all_logged, timeout=timeout, interval=0.05)


async def snapshot(database: str, client: httpx.AsyncClient) -> dict[str, Any]:
    """Everything the read side shows: board rows, every case's timeline, the KPIs (all and October)."""
    board = [dict(row) for row in await fetch(database, "SELECT * FROM case_board ORDER BY case_id")]
    timelines = {}
    for row in board:
        response = await client.get(f"/cases/{row['case_id']}/timeline")
        assert response.status_code == 200, response.text
        timelines[str(row["case_id"])] = response.json()
    return {
        "board": board,
        "timelines": timelines,
        "kpis": (await client.get("/kpis")).json(),
        "kpis_october": (await client.get("/kpis", params={"from": "2026-10-01", "to": "2026-10-31"})).json(),
        "columns": (await client.get("/board")).json()["columns"],
    }


def tokyo(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=TOKYO).astimezone(UTC)


@dataclass
class Case:
    """One case's ids and facts, and the contract events the other services publish about it."""

    department: str
    mode: Mode
    case_id: uuid.UUID = field(default_factory=uuid.uuid4)
    appointment_id: uuid.UUID = field(default_factory=uuid.uuid4)
    slot_id: uuid.UUID = field(default_factory=uuid.uuid4)
    invoice_id: uuid.UUID = field(default_factory=uuid.uuid4)

    def case_number(self, on: date) -> str:
        """As intake numbers it (SO-<year>-<five digits>); here a stand-in derived from the case id."""
        return f"SO-{on.year}-{1 + self.case_id.int % 99_999:05d}"

    def submitted(self, on: date, *, relationship: Relationship = Relationship.SELF,
                  attending_consents: bool = True, wants_treatment_here: bool = False) -> intake.CaseSubmitted:
        return intake.CaseSubmitted(
            case_id=self.case_id, mode=self.mode, department=self.department, requester_relationship=relationship,
            patient_is_minor=False, patient_deceased=False, attending_physician_consents=attending_consents,
            wants_treatment_here=wants_treatment_here, complaint_or_litigation=False, submitted_on=on,
            case_number=self.case_number(on))

    def consent(self) -> intake.ConsentVerified:
        return intake.ConsentVerified(case_id=self.case_id, basis=ConsentBasis.REQUESTER_IS_PATIENT)

    def document(self, kind: DocumentKind, on: date) -> intake.DocumentReceived:
        return intake.DocumentReceived(case_id=self.case_id, document_id=uuid.uuid4(), kind=kind, received_on=on)

    def documents(self, on: date) -> list[EventData]:
        return [self.document(DocumentKind.APPLICATION_FORM, on), self.document(DocumentKind.REFERRAL_LETTER, on),
                self.document(DocumentKind.TEST_RESULTS, on)]

    def accepted(self) -> intake.CaseAccepted:
        return intake.CaseAccepted(case_id=self.case_id, department=self.department, mode=self.mode,
                                   screened_by="dr-sato")

    def declined(self, *reasons: RefusalReason, by: str = "intake") -> intake.CaseDeclined:
        return intake.CaseDeclined(case_id=self.case_id, reasons=list(reasons), declined_by=by)

    def declined_v2(self, *reasons: DeclineReason, by: str | None = None,
                    refer_to_general_outpatient: bool = False) -> intake.CaseDeclinedV2:
        return intake.CaseDeclinedV2(
            case_id=self.case_id, reasons=list(reasons), declined_by=by,
            recommendation=Recommendation.GENERAL_OUTPATIENT if refer_to_general_outpatient else None,
            screening=Screening.SPECIALIST if by else Screening.AUTOMATIC)

    def withdrawn(self) -> intake.CaseWithdrawn:
        return intake.CaseWithdrawn(case_id=self.case_id, reason=WithdrawalReason.PATIENT_REQUEST)

    def proposed(self, day: date) -> scheduling.SlotsProposed:
        slot = scheduling.CandidateSlot(slot_id=self.slot_id, start=tokyo(day, 10), end=tokyo(day, 11),
                                        physician_id="dr-sato")
        return scheduling.SlotsProposed(case_id=self.case_id, department=self.department, mode=self.mode,
                                        candidates=[slot], hold_expires_at=tokyo(day, 9))

    def confirmed(self, day: date) -> scheduling.SlotConfirmed:
        return scheduling.SlotConfirmed(case_id=self.case_id, appointment_id=self.appointment_id,
                                        slot_id=self.slot_id, start=tokyo(day, 10), end=tokyo(day, 11),
                                        department=self.department, physician_id="dr-sato", mode=self.mode)

    def slip(self, on: date) -> scheduling.AppointmentSlipIssued:
        return scheduling.AppointmentSlipIssued(case_id=self.case_id, appointment_id=self.appointment_id, issued_on=on)

    def booked_online(self) -> scheduling.OnlineBookingRegistered:
        return scheduling.OnlineBookingRegistered(case_id=self.case_id, appointment_id=self.appointment_id,
                                                  clinics_booking_ref=f"CL-{self.case_id.hex[:8]}")

    def rescheduled(self, day: date) -> scheduling.AppointmentRescheduled:
        previous, self.slot_id = self.slot_id, uuid.uuid4()
        return scheduling.AppointmentRescheduled(
            case_id=self.case_id, appointment_id=self.appointment_id, previous_slot_id=previous, slot_id=self.slot_id,
            start=tokyo(day, 14), end=tokyo(day, 15), physician_id="dr-sato", reason=RescheduleReason.PATIENT_REQUEST)

    def cancelled_by_hospital(self) -> scheduling.AppointmentCancelled:
        return scheduling.AppointmentCancelled(
            case_id=self.case_id, appointment_id=self.appointment_id, slot_id=self.slot_id,
            reason=CancellationReason.PHYSICIAN_UNAVAILABLE, cancelled_by=CancelledBy.HOSPITAL)

    def completed(self, day: date) -> scheduling.ConsultationCompleted:
        return scheduling.ConsultationCompleted(
            case_id=self.case_id, appointment_id=self.appointment_id, mode=self.mode, department=self.department,
            physician_id="dr-sato", completed_at=tokyo(day, 11))

    def no_show(self, day: date) -> scheduling.PatientNoShow:
        return scheduling.PatientNoShow(case_id=self.case_id, appointment_id=self.appointment_id,
                                        slot_id=self.slot_id, recorded_at=tokyo(day, 10, 30))

    @property
    def total(self) -> int:
        return sum(FEES[self.mode])

    def invoiced(self) -> billing.InvoiceIssued:
        fee, tax = FEES[self.mode]
        channel = (PaymentChannel.COUNTER_BEFORE_CONSULTATION if self.mode is Mode.IN_PERSON
                   else PaymentChannel.TELEMEDICINE_PLATFORM_CARD)
        return billing.InvoiceIssued(
            case_id=self.case_id, invoice_id=self.invoice_id, appointment_id=self.appointment_id, mode=self.mode,
            amount_excl_tax=fee, tax=tax, total=fee + tax, tax_rate_percent=10, payment_channel=channel,
            fee_schedule_effective_from=date(2025, 5, 1))

    def paid(self, day: date) -> billing.PaymentCaptured:
        method = PaymentMethod.CASH if self.mode is Mode.IN_PERSON else PaymentMethod.ONLINE_CARD
        return billing.PaymentCaptured(case_id=self.case_id, invoice_id=self.invoice_id, amount=self.total,
                                       method=method, captured_at=tokyo(day, 9, 45))

    def payment_failed(self) -> billing.PaymentFailed:
        return billing.PaymentFailed(case_id=self.case_id, invoice_id=self.invoice_id, amount=self.total,
                                     reason=PaymentFailureReason.CARD_DECLINED, attempt=1)

    def refunded(self) -> billing.RefundIssued:
        return billing.RefundIssued(case_id=self.case_id, invoice_id=self.invoice_id, refund_id=uuid.uuid4(),
                                    amount=self.total, reason=RefundReason.CANCELLED_BY_HOSPITAL,
                                    refunded_total=self.total, fully_refunded=True)


class Desk:
    """Drives reporting as the other services and the desk would: contract events on the bus (envelope
    times strictly increasing in script order, sequences per service and case) and report commands."""

    def __init__(self, client: httpx.AsyncClient, bus: Bus, database: str, clock: SettableClock) -> None:
        self.client = client
        self.bus = bus
        self.database = database
        self.clock = clock
        self.published: list[CloudEvent] = []
        self._sequences: defaultdict[tuple[str, uuid.UUID], int] = defaultdict(int)
        self._last_time = datetime.now(UTC) - timedelta(hours=1)

    def _time(self) -> datetime:
        self._last_time = max(datetime.now(UTC), self._last_time + timedelta(milliseconds=1))
        return self._last_time

    async def publish(self, *events: EventData) -> list[CloudEvent]:
        envelopes = []
        for event in events:
            case_id = getattr(event, "case_id")  # noqa: B009 - every contract event has one
            self._sequences[(event.SERVICE, case_id)] += 1
            envelopes.append(make_envelope(event, sequence=self._sequences[(event.SERVICE, case_id)],
                                           time=self._time()))
        await self.bus.publish(envelopes)
        self.published += envelopes
        return envelopes

    async def settle(self) -> None:
        await wait_logged(self.database, [envelope.id for envelope in self.published])

    async def command(self, method: str, path: str, on: date, json: Any = None,
                      headers: dict[str, str] | None = None) -> httpx.Response:
        await self.settle()  # the desk acts on what it has seen
        self.clock.set_tokyo(on)
        response = await self.client.request(method, path, json=json, headers=headers or PHYSICIAN)
        self._last_time = max(self._last_time, datetime.now(UTC))
        return response

    async def write_report(self, case: Case, on: date, channel: str, *, drafts: int = 1) -> httpx.Response:
        for number in range(1, drafts + 1):
            drafted = await self.command("POST", f"/cases/{case.case_id}/report", on,
                                         {"physician": "dr-sato", "summary": f"Opinion draft {number}: surgery."})
            assert drafted.status_code == 201, drafted.text
        finalized = await self.command("POST", f"/cases/{case.case_id}/report/finalize", on)
        assert finalized.status_code == 200, finalized.text
        return await self.command("POST", f"/cases/{case.case_id}/report/delivery", on, {"channel": channel},
                                  COORDINATOR)


OCT = {day: date(2026, 10, day) for day in range(1, 32)}


@dataclass
class Script:
    """The scripted cases (see run_script) by letter."""

    cases: dict[str, Case]

    def __getitem__(self, letter: str) -> Case:
        return self.cases[letter]


async def run_script(desk: Desk) -> Script:
    """Fifteen cases through October 2026 (14 submitted in October, one in September), covering declines,
    a withdrawal, a reschedule, a no-show, a hospital cancellation with a full refund, a failed payment, and
    reports handed over, posted, and closed by the delivery or by the payment that came after it.

    Expected business days (Mon-Fri, not holidays; 12 Oct 2026 is Sports Day), from submission:
      to consultation: A 1 Oct -> 8 Oct = 5, B 1 Oct -> 15 Oct = 9, L 5 Oct -> 27 Oct = 15, P 2 Oct -> 16 Oct = 9
      to report delivery: A -> 8 Oct = 5, B -> 19 Oct = 11, P -> 21 Oct = 12
    """
    cases = Script({
        "A": Case("cardiology", Mode.IN_PERSON), "B": Case("oncology", Mode.ONLINE),
        "D": Case("hematology", Mode.IN_PERSON), "E": Case("neurology", Mode.ONLINE),
        "F": Case("cardiology", Mode.IN_PERSON), "G": Case("cardiology", Mode.IN_PERSON),
        "H": Case("gastroenterology", Mode.IN_PERSON), "I": Case("pediatrics", Mode.IN_PERSON),
        "J": Case("dermatology", Mode.ONLINE), "K": Case("urology", Mode.IN_PERSON),
        "L": Case("neurology", Mode.IN_PERSON), "M": Case("oncology", Mode.ONLINE),
        "N": Case("nephrology", Mode.IN_PERSON), "O": Case("cardiology", Mode.ONLINE),
        "P": Case("oncology", Mode.ONLINE),
    })
    a, b, d, e, f, g, h, i, j, k, m, n, o, p = (cases[x] for x in "ABDEFGHIJKMNOP")
    ell = cases["L"]  # (a lower-case l reads as a one)
    publish = desk.publish
    # September: N is accepted and waits for a date.
    await publish(n.submitted(date(2026, 9, 28)), n.consent(), *n.documents(date(2026, 9, 29)), n.accepted())
    # 1 Oct: A (in person) and B (online) arrive; D is refused at once (attending physician does not agree).
    await publish(a.submitted(OCT[1]), a.consent(), b.submitted(OCT[1]), b.consent(),
                  d.submitted(OCT[1], attending_consents=False),
                  d.declined(RefusalReason.ATTENDING_PHYSICIAN_NOT_CONSENTING))
    await publish(*a.documents(OCT[2]), a.accepted(), a.proposed(OCT[8]), a.confirmed(OCT[8]), a.slip(OCT[2]))
    await publish(*b.documents(OCT[2]), b.accepted(), b.proposed(OCT[9]), b.confirmed(OCT[9]), b.booked_online())
    # 2 Oct: P (online) and E; F is refused for two reasons and referred to the general outpatient clinic
    # (CaseDeclined v2, as intake publishes it now; D above is the deprecated v1).
    await publish(p.submitted(OCT[2]), p.consent(), *p.documents(OCT[5]), p.accepted(), p.confirmed(OCT[16]),
                  p.booked_online(), p.invoiced())
    await publish(e.submitted(OCT[2]), e.consent(), *e.documents(OCT[5]))
    await publish(f.submitted(OCT[2], wants_treatment_here=True, attending_consents=False),
                  f.declined_v2(DeclineReason.SEEKS_TREATMENT_HERE, DeclineReason.ATTENDING_PHYSICIAN_NOT_CONSENTING,
                                refer_to_general_outpatient=True))
    # 5 Oct: L, G and H are accepted and booked; I is a family request that is withdrawn.
    await publish(ell.submitted(OCT[5]), ell.consent(), *ell.documents(OCT[6]), ell.accepted(),
                  ell.confirmed(OCT[27]), ell.slip(OCT[7]))
    await publish(g.submitted(OCT[5]), g.consent(), *g.documents(OCT[6]), g.accepted(), g.confirmed(OCT[20]))
    await publish(h.submitted(OCT[5]), h.consent(), *h.documents(OCT[6]), h.accepted(), h.confirmed(OCT[22]),
                  h.invoiced())
    await publish(i.submitted(OCT[5], relationship=Relationship.FAMILY),
                  i.document(DocumentKind.APPLICATION_FORM, OCT[7]), i.withdrawn())
    # 6 Oct: the specialist declines E on its content.
    await publish(e.declined_v2(DeclineReason.DECLINED_BY_SPECIALIST, by="dr-kato"))
    # 8 Oct: A pays at the counter, consults, and gets the report in hand: delivery closes the case.
    await publish(a.invoiced(), a.paid(OCT[8]), a.completed(OCT[8]))
    handed = await desk.write_report(a, OCT[8], "handed_to_patient")
    assert handed.json()["events"] == ["ReportDelivered", "CaseClosed"], handed.text
    # 9 Oct: B's patient asks to move the date.
    await publish(b.rescheduled(OCT[15]), b.invoiced())
    # 14 Oct: J and K arrive; M only phoned in; O is confirmed for November.
    await publish(j.submitted(OCT[14]), j.document(DocumentKind.APPLICATION_FORM, OCT[14]),
                  k.submitted(OCT[14]), k.consent(), *k.documents(OCT[15]),
                  m.submitted(OCT[14], relationship=Relationship.FAMILY),
                  o.submitted(OCT[14]), o.consent(), *o.documents(OCT[15]), o.accepted(),
                  o.confirmed(date(2026, 11, 4)))
    # 15-16 Oct: B and P consult online; P's card is declined.
    await publish(b.completed(OCT[15]), p.completed(OCT[16]), p.payment_failed())
    # 19 Oct: B's report is redrafted, may not be handed over (online), and is posted; unpaid, so still open.
    for number in (1, 2):
        drafted = await desk.command("POST", f"/cases/{b.case_id}/report", OCT[19],
                                     {"physician": "dr-sato", "summary": f"Online opinion, draft {number}."})
        assert drafted.status_code == 201, drafted.text
    assert (await desk.command("POST", f"/cases/{b.case_id}/report/finalize", OCT[19])).status_code == 200
    handover = await desk.command("POST", f"/cases/{b.case_id}/report/delivery", OCT[19],
                                  {"channel": "handed_to_patient"}, COORDINATOR)
    assert handover.status_code == 409, handover.text
    posted = await desk.command("POST", f"/cases/{b.case_id}/report/delivery", OCT[19],
                                {"channel": "posted_to_attending_physician"}, COORDINATOR)
    assert posted.json()["events"] == ["ReportDelivered"], posted.text
    # 20 Oct: G does not come; B's card charge goes through, which closes B.
    desk.clock.set_tokyo(OCT[20])
    await publish(g.no_show(OCT[20]), b.paid(OCT[20]))
    # 21 Oct: P's report is posted although the fee is still unpaid (report delivered, not closed).
    posted_p = await desk.write_report(p, OCT[21], "posted_to_attending_physician")
    assert posted_p.json()["events"] == ["ReportDelivered"], posted_p.text
    # 22 Oct: H paid at the counter, then the physician was called away: cancelled and fully refunded.
    await publish(h.paid(OCT[22]), h.cancelled_by_hospital(), h.refunded())
    # 27 Oct: L consults; the report is not written yet.
    await publish(ell.invoiced(), ell.paid(OCT[27]), ell.completed(OCT[27]))
    await desk.settle()
    return cases


async def wait_closed(database: str, case_id: uuid.UUID) -> None:
    async def closed() -> bool:
        return bool(await scalar(database, "SELECT count(*) FROM case_board WHERE case_id = $1 AND stage = 'closed'",
                                 case_id))

    await wait_until(closed, timeout=20)


async def all_reporting_events_logged(database: str) -> int:
    return int(await scalar(database, "SELECT count(*) FROM received_events WHERE source = 'reporting'"))


def shuffled_with_duplicates(envelopes: list[CloudEvent], seed: int) -> list[CloudEvent]:
    twice = [*envelopes, *envelopes]
    random.Random(seed).shuffle(twice)  # noqa: S311  (a reproducible shuffle, not a secret)
    return twice


async def settle_quietly(seconds: float = 0.3) -> None:
    """A short pause where a test must show that nothing more happens (never a correctness assert on time)."""
    await asyncio.sleep(seconds)


@dataclass
class InMemoryCaseFiles:
    """reporting.repository.CaseFiles for handler tests: the cases known, the drafts and the locks taken."""

    known_cases: set[uuid.UUID] = field(default_factory=set)
    drafts: dict[tuple[uuid.UUID, int], str | None] = field(default_factory=dict)
    amendments: dict[tuple[uuid.UUID, int], str | None] = field(default_factory=dict)
    locked: list[uuid.UUID] = field(default_factory=list)

    async def lock(self, uow: UnitOfWork, case_id: uuid.UUID) -> None:
        self.locked.append(case_id)

    async def known(self, uow: UnitOfWork, case_id: uuid.UUID) -> bool:
        return case_id in self.known_cases

    async def save_draft(self, uow: UnitOfWork, case_id: uuid.UUID, draft_number: int, report_id: uuid.UUID,
                         physician_id: str, summary: str) -> None:
        self.drafts[case_id, draft_number] = summary

    async def save_amendment(self, uow: UnitOfWork, case_id: uuid.UUID, amended: ReportAmended, summary: str,
                             note: str) -> None:
        self.amendments[case_id, amended.report_version] = summary

    async def erase_texts(self, uow: UnitOfWork, case_id: uuid.UUID, erased_on: date) -> None:
        for texts in (self.drafts, self.amendments):
            for key in texts:
                if key[0] == case_id:
                    texts[key] = None
