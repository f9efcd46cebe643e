"""Test helpers (imported by the desk's tests only): the console as staff use it:
the four services in process (each on a fresh database, one
fresh RabbitMQ vhost, one settable clock, billing charging through the gateway simulator), and the desk on a
real local port calling them with the signed-in person's token, as it calls them in production over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from playwright.async_api import Browser, Locator, Page, ViewportSize, async_playwright, expect
from playwright.async_api import Error as PlaywrightError

from billing.bootstrap import build as build_billing
from billing.gateway_simulator import GatewaySimulator, running_simulator
from billing.testing import settings_for_tests as billing_settings
from desk.bootstrap import build as build_desk
from desk.settings import DeskSettings
from eventkit.runtime import wait_until
from eventkit.service_identity import IntakeDisclosure, intake_disclosure
from eventkit.testing import CHROMIUM_ARGS, SettableClock, bearer, chromium_or_skip, fresh_database, serving
from intake.bootstrap import build as build_intake
from intake.settings import IntakeSettings
from reporting.bootstrap import build as build_reporting
from reporting.settings import ReportingSettings
from scheduling.bootstrap import build as build_scheduling
from scheduling.settings import SchedulingSettings

TODAY = date(2026, 12, 2)  # a Wednesday: the desk is open
PATIENT_FAMILY = "山田 梅子"
VIEWPORT: ViewportSize = {"width": 1280, "height": 720}
SERVICES = ("intake", "scheduling", "billing", "reporting")


def desk_settings(database: str, **overrides: Any) -> DeskSettings:
    values: dict[str, Any] = {"DESK_DATABASE_URL": database, "APP_PROFILE": "development",
                              "DESK_POLL_SECONDS": 0.3, **overrides}
    return DeskSettings(**values)


@dataclass
class Console:
    url: str
    clock: SettableClock
    simulator: GatewaySimulator
    services: dict[str, httpx.AsyncClient]
    browser: Browser
    desk_database: str

    async def page(self) -> Page:
        """A fresh browser context (its own cookies), Japanese, at 1280×720, failing on any script error."""
        context = await self.browser.new_context(viewport=VIEWPORT, locale="ja-JP", timezone_id="Asia/Tokyo")
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.script_errors = errors  # type: ignore[attr-defined]
        return page

    async def sign_in(self, page: Page, staff_id: str, *roles: str) -> None:
        """The development sign-in page: pick the person and their roles."""
        await page.goto(f"{self.url}/sign-in")
        await page.locator(f'input[name="staff_id"][value="{staff_id}"]').check()
        for role in roles:
            await page.locator(f'input[name="roles"][value="{role}"]').check()
        await page.get_by_role("button", name="サインイン").click()
        await expect(page.locator(".person")).to_be_visible()

    async def sign_out(self, page: Page) -> None:
        await page.get_by_role("button", name="サインアウト").click()
        await expect(page.get_by_role("heading", name="サインイン")).to_be_visible()

    def as_staff(self, *roles: str, subject: str = "setup") -> dict[str, str]:
        return bearer(*roles, subject=subject)


def phoned_case(name: str, /, *, department: str = "cardiology", mode: str = "in_person",
                **changes: dict[str, Any]) -> dict[str, Any]:
    """What a coordinator takes down on the phone for the patient `name`, asking for themselves (`changes` adds to
    or replaces fields of its parts: requester, patient, attending_physician)."""
    body: dict[str, Any] = {
        "requester": {"relationship": "self", "name": name, "phone": "03-1234-5678"},
        "patient": {"name": name, "birth_date": "1951-03-04", "deceased": False},
        "mode": mode, "department": department, "question": "手術とカテーテル治療のどちらがよいか",
        "attending_physician": {"name": "鈴木 次郎", "institution": "市民病院", "consents": True},
        "wants_treatment_here": False, "complaint_or_litigation": False,
    }
    return {**body, **{part: {**body[part], **fields} for part, fields in changes.items()}}


async def accepted_case(c: Console, body: dict[str, Any]) -> tuple[str, str]:
    """A case taken by phone, its documents in (the consent form too for a family request) and accepted by dr-sato,
    through intake's API (the pages for these steps have tests of their own): its id and number."""
    intake, desk = c.services["intake"], c.as_staff("coordinator", subject="coord-1")
    submitted = await intake.post("/cases", json=body, headers=desk)
    assert submitted.status_code == 201, submitted.text
    case_id, number = submitted.json()["case_id"], submitted.json()["case_number"]
    family = ["consent_form"] if body["requester"]["relationship"] == "family" else []
    for kind in ("application_form", "referral_letter", "test_results", *family):
        received = await intake.post(f"/cases/{case_id}/documents", headers=desk,
                                     json={"kind": kind, "received_on": TODAY.isoformat()})
        assert received.status_code == 201, received.text
    screened = await intake.post(f"/cases/{case_id}/screening", json={"decision": "accept"},
                                 headers=c.as_staff("physician", subject="dr-sato"))
    assert screened.status_code == 200, screened.text
    return case_id, number


async def booked_case(c: Console, body: dict[str, Any], day: str, at: str,
                      physician: str = "dr-sato") -> tuple[str, str]:
    """A case accepted and booked with `physician` on `day` at `at` (through the services' APIs: the pages for
    these steps have tests of their own): its id and number."""
    scheduling, desk = c.services["scheduling"], c.as_staff("coordinator")
    case_id, number = await accepted_case(c, body)
    opened = await scheduling.post(f"/departments/{body['department']}/slots", headers=desk, json={
        "physician_id": physician, "from": day, "to": day, "start_times": [at], "duration_minutes": 60})
    assert opened.status_code == 201, opened.text
    slot_id = opened.json()["opened"][0]["slot_id"]

    async def proposed() -> bool:  # once scheduling has heard of the acceptance
        answer = await scheduling.post(f"/cases/{case_id}/proposals", headers=desk, json={"slot_ids": [slot_id]})
        return answer.status_code == 201

    await wait_until(proposed, timeout=15, interval=0.2)
    confirmed = await scheduling.post(f"/cases/{case_id}/appointment", headers=desk, json={"slot_id": slot_id})
    assert confirmed.status_code == 201, confirmed.text
    return case_id, number


def service_apps(databases: dict[str, str], rabbitmq_url: str, gateway_url: str,
                 clock: SettableClock, intake_departments: Sequence[str] | None = None) -> dict[str, FastAPI]:
    """The four services; `intake_departments`: the departments intake offers (INTAKE_DEPARTMENTS), if not its
    default."""
    common: dict[str, Any] = {"RABBITMQ_URL": rabbitmq_url, "OUTBOX_SWEEP_SECONDS": 0.2}
    offered: dict[str, Any] = {} if intake_departments is None else {"INTAKE_DEPARTMENTS": list(intake_departments)}
    intake = build_intake(IntakeSettings(INTAKE_DATABASE_URL=databases["intake"], **common, **offered), clock=clock)

    def disclosure(service: str) -> IntakeDisclosure:
        """What `service` prints, asked of intake over HTTP: here of the intake app in this process."""
        return intake_disclosure(service, "http://intake", httpx.ASGITransport(app=intake))

    return {
        "intake": intake,
        "scheduling": build_scheduling(SchedulingSettings(SCHEDULING_DATABASE_URL=databases["scheduling"], **common),
                                       clock=clock, personal_data=disclosure("scheduling")),
        "billing": build_billing(billing_settings(databases["billing"], rabbitmq_url, gateway_url), clock=clock,
                                 intake=disclosure("billing")),
        "reporting": build_reporting(ReportingSettings(REPORTING_DATABASE_URL=databases["reporting"], **common),
                                     clock=clock, personal_data=disclosure("reporting")),
    }


@asynccontextmanager
async def console(rabbitmq_url: str, desk_port: int = 0, intake_departments: Sequence[str] | None = None,
                  **desk_overrides: Any) -> AsyncIterator[Console]:
    executable = chromium_or_skip()
    clock = SettableClock.at_tokyo(TODAY, time(10, 0))
    async with AsyncExitStack() as stack:
        databases = {s: await stack.enter_async_context(fresh_database(s)) for s in (*SERVICES, "desk")}
        gateway_url, simulator = await stack.enter_async_context(running_simulator())
        apps = service_apps(databases, rabbitmq_url, gateway_url, clock, intake_departments)
        for app in apps.values():
            await stack.enter_async_context(app.router.lifespan_context(app))
        transports: dict[str, httpx.AsyncBaseTransport] = {s: httpx.ASGITransport(app=app) for s, app in apps.items()}
        clients = {s: await stack.enter_async_context(httpx.AsyncClient(transport=transports[s],
                                                                         base_url=f"http://{s}", timeout=30))
                   for s in SERVICES}
        desk = build_desk(desk_settings(databases["desk"], **desk_overrides), clock=clock, transports=transports)
        url = await stack.enter_async_context(serving(desk, desk_port))
        playwright = await stack.enter_async_context(async_playwright())
        browser = await playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        stack.push_async_callback(browser.close)
        # Chromium keeps Secure cookies over plain HTTP for localhost only (a secure context by definition).
        yield Console(url=url.replace("127.0.0.1", "localhost"), clock=clock, simulator=simulator, services=clients,
                      browser=browser,
                      desk_database=databases["desk"])


NODE_TOOLS = Path(__file__).resolve().parents[1] / "tests" / "node"
AXE = NODE_TOOLS / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs" / "console"


async def accessible(page: Page, name: str | None = None) -> None:
    """axe-core on the page as it is now: no serious or critical violation. With `name`, also the screenshot
    docs/console/<name>.png at 1280×720 (the guide shows them)."""
    assert AXE.exists(), f"{AXE} is missing: run `npm ci --prefix {NODE_TOOLS}` (make test does)"
    results = await _axe(page)
    serious = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in results["violations"]
               if v["impact"] in ("serious", "critical")]
    assert not serious, f"accessibility violations on {page.url}: {serious}"
    if name:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.evaluate("window.scrollTo(0, 0)")
        await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
    assert page.script_errors == [], page.script_errors  # type: ignore[attr-defined]


async def _axe(page: Page, tries: int = 3) -> Any:
    for attempt in range(1, tries + 1):
        try:
            # Evaluated by the browser's debugging protocol, so the page's own CSP (no inline script) does not
            # block it.
            if not await page.evaluate("typeof window.axe !== 'undefined'"):
                await page.evaluate(AXE.read_text() + "\n;undefined")
            return await page.evaluate("window.axe.run(document)")
        except PlaywrightError as error:
            # A live page reloads itself when what it shows changed (static/live.js): run axe on the new page.
            if "Execution context was destroyed" not in str(error) or attempt == tries:
                raise
            await page.wait_for_load_state()
    raise AssertionError("unreachable")


class Hands:
    """How a test works the pages: with the mouse (Playwright's click, fill, check, select), or, `keyboard=True`,
    with the keyboard alone: Tab until the control has the focus, then Enter, Space, typing or the arrow keys,
    as a person who cannot use a mouse does. The same flow run both ways shows that it needs no mouse."""

    def __init__(self, keyboard: bool = False) -> None:
        self.keyboard = keyboard

    def __repr__(self) -> str:
        return "keyboard" if self.keyboard else "mouse"

    def shot(self, name: str) -> str | None:
        """The screenshot's name for the guide: taken in the mouse run (no focus ring in the pictures)."""
        return None if self.keyboard else name

    async def click(self, target: Locator) -> None:
        if not self.keyboard:
            await target.click()
            return
        await tab_to(target)
        await target.page.keyboard.press("Enter")

    async def check(self, target: Locator) -> None:
        if not self.keyboard:
            await target.check()
            return
        await tab_to(target)
        if not await target.is_checked():
            await target.page.keyboard.press("Space")

    async def fill(self, target: Locator, text: str) -> None:
        if not self.keyboard:
            await target.fill(text)
            return
        await tab_to(target)
        await target.page.keyboard.press("Control+a")
        await target.page.keyboard.press("Delete")
        await target.page.keyboard.type(text)

    async def select(self, target: Locator, value: str | None = None, *, label: str | None = None) -> None:
        if not self.keyboard:
            await target.select_option(value, label=label)
            return
        await tab_to(target)
        await target.page.keyboard.press("Home")
        for _ in range(200):
            chosen = await target.evaluate(
                "s => [s.value, s.options[s.selectedIndex]?.label.trim(), s === document.activeElement]")
            if (value is not None and chosen[0] == value) or (label is not None and chosen[1] == label):
                return
            if not chosen[2]:  # a reload already under way when the control got the focus: reach it again
                await tab_to(target)
                await target.page.keyboard.press("Home")
            await target.page.keyboard.press("ArrowDown")
        raise AssertionError(f"no option {value or label!r} reached with the arrow keys")


async def tab_to(target: Locator, limit: int = 400) -> None:
    """Press Tab until `target` has the focus: it is reachable with the keyboard alone. (A live page that
    reloads itself meanwhile starts the round again.)"""
    page = target.page
    await target.wait_for()
    for _ in range(limit):
        try:
            if await target.evaluate("element => element === document.activeElement"):
                return
        except PlaywrightError as error:
            if "Execution context was destroyed" not in str(error):
                raise
            await page.wait_for_load_state()
            continue
        await page.keyboard.press("Tab")
    raise AssertionError(f"{target} is not reachable with Tab")
