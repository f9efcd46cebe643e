"""The four services together, in process, as the desk uses them: each on its own fresh database, all on one
fresh RabbitMQ vhost, sharing one settable clock, billing charging through the gateway simulator over HTTP,
and a subscriber bound to every event on the bus. Each request carries a bearer token for the role whose
work it is, as the desk's staff would send it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import date, time
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from billing.bootstrap import build as build_billing
from billing.gateway_simulator import GatewaySimulator, running_simulator
from billing.testing import settings_for_tests as billing_settings
from eventkit.documents import HospitalSettings
from eventkit.runtime import wait_until
from eventkit.service_identity import intake_disclosure
from eventkit.testing import EventCollector, SettableClock, bearer, fetch, fresh_database, running_app, scalar
from intake.bootstrap import build as build_intake
from intake.settings import IntakeSettings
from reporting.bootstrap import build as build_reporting
from reporting.settings import ReportingSettings
from scheduling.bootstrap import build as build_scheduling
from scheduling.settings import SchedulingSettings
from secondopinion_contracts import CloudEvent

SUBMISSION_DAY = date(2026, 12, 1)  # a Tuesday
CONSULTATION_DAY = date(2026, 12, 8)  # the Tuesday after
SERVICES = ("intake", "scheduling", "billing", "reporting")
STAFF = {
    "coordinator": bearer("coordinator", subject="coord-1"),
    "physician": bearer("physician", subject="dr-sato"),
    "cashier": bearer("cashier", subject="cashier-3"),
}


def case_request(mode: str, patient_name: str = "Hanako Yamada") -> dict[str, Any]:
    return {
        "requester": {"relationship": "family", "name": f"{patient_name} (daughter)", "phone": "03-1234-5678"},
        "patient": {"name": patient_name, "birth_date": "1958-04-01", "deceased": False,
                    "postal_address": {"postal_code": "980-0811", "address": "宮城県仙台市青葉区一番町1-2-3"}},
        "mode": mode,
        "department": "cardiology",
        "question": "Is surgery the right treatment for my mother's valve disease?",
        "attending_physician": {"name": "Dr. Ichiro Sato", "institution": "Minato Clinic", "consents": True,
                                "institution_address": {"postal_code": "105-0011",
                                                        "address": "東京都港区芝公園4-2-8"}},
        "wants_treatment_here": False,
        "complaint_or_litigation": False,
    }


# Who issues the printed documents in these tests (the physicians' printed names configured).
HOSPITAL = HospitalSettings(HOSPITAL_PHYSICIANS={"dr-sato": "佐藤 一郎"})


def expect(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, f"{response.request.method} {response.request.url}: {response.text}"
    body: dict[str, Any] = response.json()
    return body


def expect_text(response: httpx.Response) -> str:
    assert response.status_code == 200, f"{response.request.url}: {response.status_code}"
    return response.text


@dataclass
class Hospital:
    intake: httpx.AsyncClient
    scheduling: httpx.AsyncClient
    billing: httpx.AsyncClient
    reporting: httpx.AsyncClient
    clock: SettableClock
    bus: EventCollector
    simulator: GatewaySimulator
    databases: dict[str, str]
    rabbitmq_url: str
    apps: dict[str, FastAPI]

    def clients(self) -> dict[str, httpx.AsyncClient]:
        return {"intake": self.intake, "scheduling": self.scheduling, "billing": self.billing,
                "reporting": self.reporting}

    async def scrape_metrics(self) -> dict[str, dict[tuple[str, frozenset[tuple[str, str]]], float]]:
        """Every service's /metrics, parsed: {service: {(sample name, labels): value}}."""
        scraped = {}
        for service, client in self.clients().items():
            exposition = expect_text(await client.get("/metrics"))
            scraped[service] = {(sample.name, frozenset(sample.labels.items())): sample.value
                                for family in text_string_to_metric_families(exposition) for sample in family.samples}
        return scraped

    def published(self, case_id: str) -> list[CloudEvent]:
        return [envelope for envelope in self.bus.envelopes if envelope.subject == case_id]

    async def wait_for(self, case_id: str, *event_names: str, timeout: float = 20.0) -> list[CloudEvent]:
        """Until every named event of the case has been published on the bus; returns the case's events."""
        async def all_published() -> bool:
            names = {envelope.event_name for envelope in self.published(case_id)}
            return set(event_names) <= names

        await wait_until(all_published, timeout=timeout)
        return self.published(case_id)

    async def fetch(self, service: str, query: str, *args: Any) -> list[asyncpg.Record]:
        return await fetch(self.databases[service], query, *args)

    async def wait_consumed(self, service: str, event_ids: list[uuid.UUID], timeout: float = 20.0) -> None:
        """Until the service's consumer has committed these events (its inbox keeps each id once)."""
        async def consumed() -> bool:
            found = await scalar(self.databases[service], "SELECT count(*) FROM inbox WHERE message_id = ANY($1)",
                                 [str(event_id) for event_id in event_ids])
            return int(found) == len(event_ids)

        await wait_until(consumed, timeout=timeout)

    async def submit_and_accept(self, mode: str, patient_name: str = "Hanako Yamada") -> str:
        """The coordinator takes the request and its documents; the physician accepts it at screening."""
        self.clock.set_tokyo(SUBMISSION_DAY, time(10, 0))
        coordinator = STAFF["coordinator"]
        case_id = str(expect(await self.intake.post("/cases", json=case_request(mode, patient_name),
                                                    headers=coordinator), 201)["case_id"])
        for kind in ("application_form", "referral_letter", "test_results", "consent_form"):
            expect(await self.intake.post(f"/cases/{case_id}/documents", headers=coordinator,
                                          json={"kind": kind, "received_on": SUBMISSION_DAY.isoformat()}), 201)
        accepted = expect(await self.intake.post(f"/cases/{case_id}/screening", headers=STAFF["physician"],
                                                 json={"decision": "accept", "physician": "dr-sato"}), 200)
        assert accepted["status"] == "accepted"
        return case_id

    async def book(self, case_id: str) -> dict[str, Any]:
        """Scheduling has heard of the acceptance; the desk proposes two slots and the patient picks the first."""
        coordinator = STAFF["coordinator"]

        async def waiting_for_proposals() -> bool:
            response = await self.scheduling.get(f"/cases/{case_id}/schedule", headers=coordinator)
            return response.status_code == 200 and response.json()["status"] == "awaiting_proposals"

        await wait_until(waiting_for_proposals, timeout=20)
        opened = expect(await self.scheduling.post("/departments/cardiology/slots", headers=coordinator, json={
            "physician_id": "dr-sato", "from": CONSULTATION_DAY.isoformat(), "to": CONSULTATION_DAY.isoformat(),
            "start_times": ["10:00", "14:00"], "duration_minutes": 60}), 201)
        slot_ids = [slot["slot_id"] for slot in opened["opened"]]
        expect(await self.scheduling.post(f"/cases/{case_id}/proposals", headers=coordinator,
                                          json={"slot_ids": slot_ids}), 201)
        return expect(await self.scheduling.post(f"/cases/{case_id}/appointment", headers=coordinator,
                                                 json={"slot_id": slot_ids[0]}), 201)

    async def invoice_of(self, case_id: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        async def issued() -> bool:
            response = await self.billing.get("/invoices", params={"case_id": case_id}, headers=STAFF["cashier"])
            found[:] = response.json()["invoices"] if response.status_code == 200 else []
            return len(found) == 1

        await wait_until(issued, timeout=20)
        return found[0]

    async def complete(self, appointment_id: str) -> httpx.Response:
        return await self.scheduling.post(f"/appointments/{appointment_id}/complete", headers=STAFF["physician"])

    async def complete_once_paid(self, appointment_id: str) -> None:
        """Completion is refused (409) until scheduling has heard of the payment; then it succeeds, once."""
        async def completed() -> bool:
            response = await self.complete(appointment_id)
            assert response.status_code in (200, 409), response.text
            return response.status_code == 200

        await wait_until(completed, timeout=20)

    async def write_report(self, case_id: str) -> None:
        """The physician writes the opinion and finalizes it, once reporting has heard the consultation took place
        (before that it refuses a report, 409 no_consultation)."""
        physician = STAFF["physician"]
        events = await self.wait_for(case_id, "ConsultationCompleted")
        await self.wait_consumed("reporting", [e.id for e in events if e.event_name == "ConsultationCompleted"])
        expect(await self.reporting.post(f"/cases/{case_id}/report", headers=physician, json={
            "physician": "dr-sato", "summary": "Surgery is reasonable; a catheter treatment is an alternative."}), 201)
        expect(await self.reporting.post(f"/cases/{case_id}/report/finalize", headers=physician), 200)

    async def deliver(self, case_id: str, channel: str) -> httpx.Response:
        return await self.reporting.post(f"/cases/{case_id}/report/delivery", headers=STAFF["coordinator"],
                                         json={"channel": channel})


@asynccontextmanager
async def hospital(rabbitmq_url: str) -> AsyncIterator[Hospital]:
    clock = SettableClock.at_tokyo(SUBMISSION_DAY, time(10, 0))
    async with AsyncExitStack() as stack:
        databases = {service: await stack.enter_async_context(fresh_database(service)) for service in SERVICES}
        gateway_url, simulator = await stack.enter_async_context(running_simulator())
        bus = await EventCollector(rabbitmq_url, "#").start()
        stack.push_async_callback(bus.stop)
        common: dict[str, Any] = {"RABBITMQ_URL": rabbitmq_url, "OUTBOX_SWEEP_SECONDS": 0.2}
        intake_app = build_intake(IntakeSettings(INTAKE_DATABASE_URL=databases["intake"], **common), clock=clock)
        # Billing, scheduling and reporting ask intake over HTTP for the names and addresses they print; here that
        # HTTP goes to the intake app in this process.
        intake_transport = httpx.ASGITransport(app=intake_app)
        apps = {
            "intake": intake_app,
            "scheduling": build_scheduling(
                SchedulingSettings(SCHEDULING_DATABASE_URL=databases["scheduling"], **common), clock=clock,
                personal_data=intake_disclosure("scheduling", "http://intake", intake_transport), hospital=HOSPITAL),
            "billing": build_billing(billing_settings(databases["billing"], rabbitmq_url, gateway_url), clock=clock,
                                     intake=intake_disclosure("billing", "http://intake", intake_transport),
                                     hospital=HOSPITAL),
            "reporting": build_reporting(
                ReportingSettings(REPORTING_DATABASE_URL=databases["reporting"], **common), clock=clock,
                personal_data=intake_disclosure("reporting", "http://intake", intake_transport), hospital=HOSPITAL),
        }
        clients = {service: await stack.enter_async_context(running_app(app)) for service, app in apps.items()}
        yield Hospital(intake=clients["intake"], scheduling=clients["scheduling"], billing=clients["billing"],
                       reporting=clients["reporting"], clock=clock, bus=bus, simulator=simulator,
                       databases=databases, rabbitmq_url=rabbitmq_url, apps=apps)

