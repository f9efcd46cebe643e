"""The departments the desk offers are intake's (GET /departments): fetched with the person's token, cached in the
desk process, named in Japanese (English in English), a posted department checked against them; and when intake
cannot be asked, the pages still answer (the code shown, the forms saying that the list is unavailable)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from desk.backends import Backends
from desk.bootstrap import build as build_desk
from desk.departments import RETRY_SECONDS, DepartmentCatalogue
from desk.settings import DEFAULT_SERVICE_URLS
from desk.testing import desk_settings
from eventkit.testing import bearer, fresh_database, running_app
from intake.bootstrap import build as build_intake
from intake.settings import IntakeSettings

BASE = "https://desk.test"
PEDIATRICS = {"code": "pediatrics", "name_ja": "小児科", "name_en": "Pediatrics"}


class FakeIntake:
    """Intake's catalogue as a test wants it answered, counting the calls and the tokens they carried."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.answer: Callable[[], httpx.Response] = lambda: httpx.Response(200, json={"departments": [PEDIATRICS]})

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/departments"
        self.calls.append(request.headers["authorization"])
        return self.answer()

    def catalogue(self, ttl: float, clock: Callable[[], float]) -> DepartmentCatalogue:
        backends = Backends(DEFAULT_SERVICE_URLS, 5, transports={"intake": httpx.MockTransport(self.handle)})
        return DepartmentCatalogue(backends, ttl, clock=clock)


def unreachable() -> httpx.Response:
    raise httpx.ConnectError("connection refused")


async def test_the_catalogue_is_asked_once_per_cache_time_with_the_persons_token() -> None:
    intake, now = FakeIntake(), [0.0]
    catalogue = intake.catalogue(300, lambda: now[0])
    first = await catalogue.get("token-a")
    assert (first.available, first.codes) == (True, ["pediatrics"])
    assert (first.name("pediatrics", "ja"), first.name("pediatrics", "en")) == ("小児科", "Pediatrics")
    now[0] = 299
    await asyncio.gather(*(catalogue.get("token-b") for _ in range(5)))
    assert intake.calls == ["Bearer token-a"], "cached: not every page asks intake"
    now[0] = 301
    await asyncio.gather(*(catalogue.get("token-b") for _ in range(5)))
    assert intake.calls == ["Bearer token-a", "Bearer token-b"], "expired: asked once again, not once per page"


async def test_an_unreachable_intake_is_asked_again_only_after_a_while_and_its_codes_are_shown() -> None:
    intake, now = FakeIntake(), [0.0]
    catalogue = intake.catalogue(300, lambda: now[0])
    intake.answer = unreachable
    down = await catalogue.get("t")
    assert (down.available, down.codes, down.name("cardiology", "ja")) == (False, [], "cardiology")
    await catalogue.get("t")
    assert len(intake.calls) == 1, "a dead intake is not asked by every page"
    intake.answer = lambda: httpx.Response(200, json={"departments": [PEDIATRICS]})
    now[0] = RETRY_SECONDS + 1
    assert (await catalogue.get("t")).codes == ["pediatrics"]

    intake.answer = lambda: httpx.Response(200, json={"unexpected": True})
    now[0] += 301
    assert not (await catalogue.get("t")).available, "an answer of another shape is no catalogue"


async def test_a_refused_token_is_not_remembered_for_the_next_person() -> None:
    intake, now = FakeIntake(), [0.0]
    catalogue = intake.catalogue(300, lambda: now[0])
    intake.answer = lambda: httpx.Response(403, json={"detail": "this needs one of the roles"})
    assert not (await catalogue.get("refused")).available
    intake.answer = lambda: httpx.Response(200, json={"departments": [PEDIATRICS]})
    assert (await catalogue.get("admitted")).available
    assert intake.calls == ["Bearer refused", "Bearer admitted"]


def csrf_of(page: httpx.Response) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, "the form carries a CSRF token"
    return match.group(1)


def options(page: httpx.Response) -> list[str]:
    select = re.search(r'<select id="department"[^>]*>(.*?)</select>', page.text, re.S)
    assert select, "the page has the department picker"
    return re.findall(r">([^<]*)</option>", select.group(1))


@asynccontextmanager
async def desk_over(intake: httpx.AsyncBaseTransport | None, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The desk signed in as a coordinator, calling `intake` (None: an intake nobody answers at)."""
    async with fresh_database("desk") as database:
        nowhere = {f"DESK_{service.upper()}_URL": "http://127.0.0.1:9" for service in DEFAULT_SERVICE_URLS}
        settings = desk_settings(database, DESK_PUBLIC_URL=BASE, **nowhere, **overrides)
        app = build_desk(settings, transports={"intake": intake} if intake else None)
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
            page = await client.get("/sign-in")
            signed_in = await client.post("/sign-in/development", data={
                "csrf_token": csrf_of(page), "staff_id": "coord-1", "roles": ["coordinator"]})
            assert signed_in.status_code == 303, signed_in.text
            yield client


NEW_CASE = {"relationship": "self", "patient_name": "山田 太郎", "patient_birth_date": "1960/1/1", "mode": "online",
            "question": "治療方針について", "attending_name": "鈴木 次郎", "attending_institution": "市民病院",
            "attending_consents": "on"}


async def test_the_departments_offered_and_their_names_are_intakes_and_another_is_refused_at_the_field(
        database: str, rabbitmq_url: str) -> None:
    settings = IntakeSettings(INTAKE_DATABASE_URL=database, RABBITMQ_URL=rabbitmq_url,
                              INTAKE_DEPARTMENTS=["pediatrics", "neurology"])
    intake_app = build_intake(settings)
    async with running_app(intake_app, headers=bearer("coordinator")) as intake, \
            desk_over(httpx.ASGITransport(app=intake_app)) as desk:
        form = await desk.get("/cases/new")
        assert options(form) == ["—", "小児科", "脳神経内科"], "intake's departments, in its order, in Japanese"
        assert options(await desk.get("/queue")) == ["すべて", "小児科", "脳神経内科"]
        assert options(await desk.get("/slots")) == ["小児科", "脳神経内科"]

        # Cardiology has a name in the hospital's catalogue, but this intake does not offer it: refused at the field.
        refused = await desk.post("/cases/new", data={**NEW_CASE, "department": "cardiology",
                                                      "csrf_token": csrf_of(form)})
        assert refused.status_code == 422
        assert re.search(r'id="department-error">選択してください<', refused.text)
        assert (await intake.get("/cases")).json()["cases"] == [], "nothing was sent to intake"

        taken = await desk.post("/cases/new", data={**NEW_CASE, "department": "pediatrics",
                                                    "csrf_token": csrf_of(form)})
        assert taken.status_code == 303, taken.text
        case = await desk.get(taken.headers["location"])
        assert "小児科" in case.text

        await desk.post("/language", data={"csrf_token": csrf_of(form), "lang": "en"})
        assert options(await desk.get("/cases/new")) == ["—", "Pediatrics", "Neurology"]


async def test_without_intakes_catalogue_the_pages_answer_with_codes_and_the_forms_say_so(
        database: str, rabbitmq_url: str) -> None:
    intake_app = build_intake(IntakeSettings(INTAKE_DATABASE_URL=database, RABBITMQ_URL=rabbitmq_url))
    passing = httpx.ASGITransport(app=intake_app)

    async def catalogue_down(request: httpx.Request) -> httpx.Response:
        """Intake answers everything but its catalogue (say, behind a proxy that fails on that route)."""
        if request.url.path == "/departments":
            return httpx.Response(503, json={"detail": "unavailable"})
        return await passing.handle_async_request(request)

    async with running_app(intake_app, headers=bearer("coordinator")) as intake, \
            desk_over(httpx.MockTransport(catalogue_down)) as desk:
        submitted = await intake.post("/cases", json={
            "requester": {"relationship": "self", "name": "山田 太郎"},
            "patient": {"name": "山田 太郎", "birth_date": "1960-01-01"}, "mode": "online",
            "department": "cardiology", "question": "q",
            "attending_physician": {"name": "Dr", "institution": "Clinic", "consents": True},
            "wants_treatment_here": False, "complaint_or_litigation": False})
        case_id = submitted.json()["case_id"]
        case = await desk.get(f"/cases/{case_id}")
        assert case.status_code == 200
        assert "<dd>cardiology</dd>" in case.text, "the code, not a name made up by the desk"
        unavailable = "診療科の一覧を受付サービスから取得できません"
        for path in ("/cases/new", "/queue", "/slots", "/cases"):
            page = await desk.get(path)
            assert page.status_code == 200, path
            assert unavailable in page.text, path
        assert f'data-case-id="{case_id}"' in (await desk.get("/queue")).text, "the lists still answer"
        form = await desk.get("/cases/new")
        posted = await desk.post("/cases/new", data={**NEW_CASE, "department": "cardiology",
                                                     "csrf_token": csrf_of(form)})
        assert posted.status_code == 503
        assert re.search(rf'id="department-error">{unavailable}', posted.text)
        assert len((await intake.get("/cases")).json()["cases"]) == 1, "nothing was sent"

    async with desk_over(None) as nowhere:  # no intake at all: still pages, not 500s
        for path in ("/cases/new", "/queue", "/cases", "/slots"):
            page = await nowhere.get(path)
            assert page.status_code == 200, path
            assert "診療科の一覧を受付サービスから取得できません" in page.text
