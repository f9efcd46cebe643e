"""The dashboard in a real browser: headless Chromium (Debian's package, installed by
scripts/install-chromium.sh) driven by Playwright. Reporting serves on a real local port; cases are
submitted through intake's real API and moved along by the other services' events and the report API,
and the page shows each card move across the board without a reload."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page, async_playwright, expect

from eventkit.auth import mint_development_token
from eventkit.testing import (
    CHROMIUM_ARGS,
    SettableClock,
    bearer,
    chromium_or_skip,
    fresh_database,
    running_app,
    serving,
)
from intake.bootstrap import build as build_intake
from intake.settings import IntakeSettings
from reporting.bootstrap import build as build_reporting
from reporting.testing import COORDINATOR, PHYSICIAN, Bus, Case, Desk, reporting_settings
from secondopinion_contracts.codes import Mode

SCREENSHOT = Path("/tmp/reporting-dashboard.png")  # noqa: S108 - a file for a person to look at
STAFF = bearer(subject="coord-7")  # every role: intake's screening is the physician's
SUBMITTED_ON = date(2026, 10, 1)
CONSULTATION_DAY = date(2026, 10, 8)


def intake_request(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "requester": {"relationship": "self", "name": "Hanako Test", "phone": "03-1234-5678"},
        "patient": {"name": "Hanako Test", "birth_date": "1968-04-01", "deceased": False},
        "mode": "in_person", "department": "cardiology", "question": "Surgery or catheter?",
        "attending_physician": {"name": "Dr. Sato", "institution": "Minato Clinic", "consents": True},
        "wants_treatment_here": False, "complaint_or_litigation": False,
    }
    body.update(changes)
    return body


async def expect_in_column(page: Page, column: str, case_id: uuid.UUID) -> None:
    card = page.locator(f'[data-column="{column}"] [data-case-id="{case_id}"]')
    await expect(card).to_be_visible(timeout=15_000)


async def test_cases_move_across_the_board_and_the_page_shows_timeline_and_kpis(
        database: str, rabbitmq_url: str) -> None:
    executable = chromium_or_skip()
    clock = SettableClock.at_tokyo(CONSULTATION_DAY)
    reporting_app = build_reporting(reporting_settings(database, rabbitmq_url, REPORTING_DASHBOARD_POLL_SECONDS=0.25),
                                    clock=clock)
    intake_clock = lambda: datetime(2026, 10, 1, 1, 0, tzinfo=UTC)  # noqa: E731
    async with fresh_database("intake") as intake_database, serving(reporting_app) as base_url, \
            running_app(build_intake(IntakeSettings(INTAKE_DATABASE_URL=intake_database, RABBITMQ_URL=rabbitmq_url,
                                                    OUTBOX_SWEEP_SECONDS=0.2), clock=intake_clock),
                        headers=STAFF) as intake, \
            httpx.AsyncClient(base_url=base_url, timeout=30) as reporting, Bus(rabbitmq_url) as bus, \
            async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1600, "height": 1300}, locale="ja-JP")
            page_errors: list[str] = []
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            token = mint_development_token("coord-7", ["coordinator"])
            await page.goto(f"{base_url}/dashboard#token={token}")
            await expect(page.locator("#who")).to_contain_text("coord-7 (coordinator)")
            assert "token" not in page.url, "the token is taken out of the address bar"
            await expect(page.locator('[data-column="submitted"] h3')).to_contain_text("受付")
            await expect(page.locator('[data-column="submitted"] h3')).to_contain_text("Submitted")

            submitted = await intake.post("/cases", json=intake_request())
            assert submitted.status_code == 201, submitted.text
            case = Case("cardiology", Mode.IN_PERSON, case_id=uuid.UUID(submitted.json()["case_id"]))
            await expect_in_column(page, "submitted", case.case_id)

            for kind, column in (("application_form", "awaiting_documents"), ("referral_letter", "awaiting_documents"),
                                 ("test_results", "screening")):
                received = await intake.post(f"/cases/{case.case_id}/documents",
                                             json={"kind": kind, "received_on": "2026-10-02"})
                assert received.status_code == 201, received.text
                await expect_in_column(page, column, case.case_id)
            accepted = await intake.post(f"/cases/{case.case_id}/screening", json={"decision": "accept"},
                                         headers=bearer("physician", subject="dr-sato"))
            assert accepted.json()["status"] == "accepted", accepted.text
            await expect_in_column(page, "scheduling", case.case_id)

            desk = Desk(reporting, bus, database, clock)
            await desk.publish(case.proposed(CONSULTATION_DAY), case.confirmed(CONSULTATION_DAY))
            await expect_in_column(page, "confirmed", case.case_id)
            await desk.publish(case.invoiced(), case.completed(CONSULTATION_DAY))
            await expect_in_column(page, "consulted", case.case_id)

            for path, body, headers in ((f"/cases/{case.case_id}/report", {"physician": "dr-sato", "summary": "ok"},
                                         PHYSICIAN),
                                        (f"/cases/{case.case_id}/report/finalize", None, PHYSICIAN),
                                        (f"/cases/{case.case_id}/report/delivery", {"channel": "handed_to_patient"},
                                         COORDINATOR)):
                response = await reporting.post(path, json=body, headers=headers)
                assert response.status_code in (200, 201), response.text
            await expect_in_column(page, "report_delivered", case.case_id)
            await desk.publish(case.paid(CONSULTATION_DAY))  # settled after delivery: the case closes
            await expect_in_column(page, "closed", case.case_id)

            declined = await intake.post("/cases", json=intake_request(
                attending_physician={"name": "Dr. Sato", "institution": "Minato Clinic", "consents": False}))
            declined_id = uuid.UUID(declined.json()["case_id"])
            await expect_in_column(page, "declined_withdrawn", declined_id)
            await expect(page.locator(f'[data-case-id="{declined_id}"]')).to_contain_text("主治医の同意なし")

            await page.locator(f'[data-case-id="{case.case_id}"]').click()
            panel = page.locator("#timeline-panel")
            await expect(panel).to_be_visible()
            await expect(panel).to_have_attribute("data-case-id", str(case.case_id))
            rows = panel.locator("tbody tr")
            await expect(rows.first).to_contain_text("申込受付")
            await expect(rows.first).to_contain_text("Case submitted")
            await expect(rows.last).to_contain_text("Case closed")
            await expect(panel.locator('tr[data-event="ReportDelivered"]')).to_contain_text("coord-7")

            await expect(page.locator("#kpi-total .value")).to_have_text("2")
            await expect(page.locator("#kpi-fees .value")).to_contain_text("33,000")
            await expect(page.locator('#chart-stage rect[data-key="closed"]')).to_have_attribute("data-value", "1")
            await expect(page.locator('#chart-declines rect[data-key="attending_physician_not_consenting"]')
                         ).to_have_attribute("data-value", "1")
            await page.screenshot(path=str(SCREENSHOT), full_page=True)
            assert page_errors == []
        finally:
            await browser.close()
