"""Case numbers and finding a case when the patient calls back, on the real PostgreSQL: numbering per year (Asia/Tokyo)
under concurrent submissions, `GET /cases/search` by each key in full-width and half-width input, an erased case no
longer found, the access log's entry, and the roles."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import date, time
from typing import Any

import httpx
import pytest

from eventkit.testing import SettableClock, bearer, erase_personal_data, fetch, running_app
from intake.bootstrap import build, reindex_search
from intake.search import BlindIndex
from intake.settings import IntakeSettings

STAFF = bearer("coordinator", subject="coord-12")
KANJI, KANA = "山田 太郎", "ヤマダ タロウ"


def request_body(**changes: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "requester": {"relationship": "self", "name": "Hanako Zzyzx", "phone": "03-5555-0101"},
        "patient": {"name": "Hanako Zzyzx", "birth_date": "1970-05-05", "deceased": False},
        "mode": "in_person", "department": "cardiology", "question": "Surgery or catheter?",
        "attending_physician": {"name": "Dr. Ichiro Sato", "institution": "Minato Clinic", "consents": True},
        "wants_treatment_here": False, "complaint_or_litigation": False,
    }
    return {**body, **{key: {**body[key], **value} for key, value in changes.items()}}


def full_width(text: str) -> str:
    """ASCII letters, digits and punctuation as their full-width forms (U+FF01..U+FF5E), spaces as U+3000."""
    return "".join("\u3000" if c == " " else chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def half_width_katakana(text: str) -> str:
    """The katakana of these tests' names as half-width forms (what NFKC turns back into full-width)."""
    table = {"ヤ": "\uff94", "マ": "\uff8f", "ダ": "\uff80\uff9e", "タ": "\uff80", "ロ": "\uff9b", "ウ": "\uff73",
             " ": " "}
    return "".join(table[c] for c in text)


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock.at_tokyo("2026-12-01", time(10, 0))


@pytest.fixture
async def intake(database: str, rabbitmq_url: str, clock: SettableClock) -> AsyncIterator[httpx.AsyncClient]:
    settings = IntakeSettings(INTAKE_DATABASE_URL=database, RABBITMQ_URL=rabbitmq_url, OUTBOX_SWEEP_SECONDS=0.2)
    async with running_app(build(settings, clock=clock), headers=STAFF) as client:
        yield client


async def submit(client: httpx.AsyncClient, **changes: Any) -> dict[str, Any]:
    response = await client.post("/cases", json=request_body(**changes))
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def submit_yamada(client: httpx.AsyncClient) -> dict[str, Any]:
    return await submit(client, requester={"relationship": "self", "name": KANJI, "phone": "03-1234-5678"},
                        patient={"name": KANJI, "name_kana": KANA, "birth_date": "1968-04-01"})


async def search(client: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    response = await client.get("/cases/search", params=params)
    assert response.status_code == 200, response.text
    cases: list[dict[str, Any]] = response.json()["cases"]
    return cases


async def test_cases_are_numbered_in_order_per_tokyo_year_and_the_number_is_shown_beside_the_id(
        intake: httpx.AsyncClient, clock: SettableClock) -> None:
    first = await submit(intake)
    assert first["case_number"] == "SO-2026-00001"
    second = await submit(intake)
    assert second["case_number"] == "SO-2026-00002"
    # 23:30 on New Year's Eve in UTC is already the new year in Tokyo.
    clock.set_tokyo("2027-01-01", time(8, 30))
    new_year = await submit(intake)
    assert new_year["case_number"] == "SO-2027-00001"
    view = (await intake.get(f"/cases/{second['case_id']}")).json()
    assert (view["case_id"], view["case_number"]) == (second["case_id"], "SO-2026-00002")
    listed = (await intake.get("/cases")).json()["cases"]
    assert {row["case_id"]: row["case_number"] for row in listed} == {
        case["case_id"]: case["case_number"] for case in (first, second, new_year)}


async def test_concurrent_submissions_get_distinct_numbers_without_a_gap(intake: httpx.AsyncClient,
                                                                         database: str) -> None:
    responses = await asyncio.gather(*(intake.post("/cases", json=request_body()) for _ in range(12)))
    assert [response.status_code for response in responses] == [201] * 12
    numbers = sorted(response.json()["case_number"] for response in responses)
    assert numbers == [f"SO-2026-{n:05d}" for n in range(1, 13)]
    rows = await fetch(database, "SELECT case_id, number FROM case_numbers")
    assert {str(row["case_id"]): row["number"] for row in rows} == {
        response.json()["case_id"]: response.json()["case_number"] for response in responses}


async def test_a_refused_submission_takes_no_number(intake: httpx.AsyncClient) -> None:
    refused = await intake.post("/cases", json=request_body(patient={"birth_date": "2026-12-02"}))
    assert refused.status_code in (409, 422), refused.text
    assert (await submit(intake))["case_number"] == "SO-2026-00001"


async def test_a_rebuild_of_the_read_model_keeps_every_number(intake: httpx.AsyncClient) -> None:
    case = await submit(intake)
    runtime = intake._transport.app.state.runtime  # type: ignore[attr-defined]
    await runtime.store.rebuild_projections()
    assert (await intake.get(f"/cases/{case['case_id']}")).json()["case_number"] == case["case_number"]
    assert (await submit(intake))["case_number"] == "SO-2026-00002", "a number is never given again"


@pytest.mark.parametrize("params", [
    {"case_number": "SO-2026-00002"}, {"case_number": full_width("so-2026-2")}, {"case_number": "SO 2026 00002"},
    {"name": KANJI}, {"name": "山田\u3000太郎"}, {"name": "山田太郎"},
    {"name": KANA}, {"name": "やまだ たろう"}, {"name": half_width_katakana(KANA)},
    {"birth_date": "1968-04-01"}, {"birth_date": full_width("1968/4/1")}, {"birth_date": "1968年4月1日"},
    {"phone": "03-1234-5678"}, {"phone": full_width("03-1234-5678")}, {"phone": "+81 3 1234 5678"},
    {"name": "やまだたろう", "birth_date": full_width("1968-04-01")},
    {"name": KANJI, "phone": "0312345678", "birth_date": "19680401", "case_number": "SO-2026-00002"},
])
async def test_a_caller_is_found_by_each_key_however_it_is_typed(intake: httpx.AsyncClient,
                                                                 params: dict[str, str]) -> None:
    other = await submit(intake, patient={"name": "佐藤 花子", "birth_date": "1968-04-02"},
                         requester={"phone": "03-9999-0000"})
    yamada = await submit_yamada(intake)
    assert (other["case_number"], yamada["case_number"]) == ("SO-2026-00001", "SO-2026-00002")
    found = await search(intake, **params)
    assert [case["case_id"] for case in found] == [yamada["case_id"]]
    assert found[0]["case_number"] == "SO-2026-00002"
    assert set(found[0]) == {"case_id", "case_number", "status", "mode", "department", "submitted_on",
                             "personal_data_erased_on"}, "no personal data in the answer"


async def test_a_search_finds_only_cases_matching_every_key_given(intake: httpx.AsyncClient) -> None:
    await submit_yamada(intake)
    twin = await submit(intake, patient={"name": KANJI, "birth_date": "1975-01-01"})
    assert len(await search(intake, name=KANJI)) == 2
    assert [c["case_id"] for c in await search(intake, name=KANJI, birth_date="1975-01-01")] == [twin["case_id"]]
    assert await search(intake, name=KANJI, birth_date="1980-01-01") == []
    assert await search(intake, name="山田") == [], "a name is matched whole, never in part"
    assert await search(intake, case_number="SO-2026-00099") == []


async def test_an_erased_case_is_no_longer_found_by_its_personal_data(
        intake: httpx.AsyncClient, database: str, clock: SettableClock) -> None:
    case = await submit_yamada(intake)
    assert len(await search(intake, name=KANA)) == 1
    rows = await fetch(database, "SELECT kind FROM case_search_index WHERE case_id = $1::uuid", case["case_id"])
    assert sorted(row["kind"] for row in rows) == ["birth_date", "name", "name", "phone"]  # the name in kanji, kana
    clock.set_tokyo("2032-12-02", time(10, 0))  # past the retention period
    erased = await erase_personal_data(intake, case["case_id"])
    assert erased.status_code == 200, erased.text
    assert await fetch(database, "SELECT 1 FROM case_search_index WHERE case_id = $1::uuid", case["case_id"]) == []
    for params in ({"name": KANA}, {"name": KANJI}, {"birth_date": "1968-04-01"}, {"phone": "03-1234-5678"}):
        assert await search(intake, **params) == [], params
    # The number is no personal data: the case is still there, its personal data erased.
    [by_number] = await search(intake, case_number=case["case_number"])
    assert by_number["personal_data_erased_on"] == "2032-12-02"


async def test_the_index_holds_digests_never_the_values(intake: httpx.AsyncClient, database: str) -> None:
    await submit_yamada(intake)
    stored = " ".join(str(dict(row)) for row in await fetch(database, "SELECT * FROM case_search_index"))
    for value in ("山田", "ヤマダ", "0312345678", "1234", "1968"):
        assert value not in stored
    assert {row["kind"] for row in await fetch(database, "SELECT kind FROM case_search_index")} == {
        "name", "birth_date", "phone"}


async def test_every_search_is_in_the_access_log_by_what_it_searched_by_never_the_values(
        intake: httpx.AsyncClient, database: str) -> None:
    await submit_yamada(intake)
    await search(intake, name=KANA, birth_date="1968-04-01")
    cashier = await intake.get("/cases/search", params={"phone": "03-1234-5678"},
                               headers=bearer("cashier", subject="cashier-3"))
    assert cashier.status_code == 200
    await search(intake, case_number="SO-2026-00001")
    rows = await fetch(database, "SELECT actor_id, actor_role, case_id, action FROM access_log"
                                 " WHERE action LIKE 'search_cases%' ORDER BY id")
    assert [(r["actor_id"], r["actor_role"], r["case_id"], r["action"]) for r in rows] == [
        ("coord-12", "coordinator", "*", "search_cases_by_name_and_birth_date"),
        ("cashier-3", "cashier", "*", "search_cases_by_phone"),
        ("coord-12", "coordinator", "*", "search_cases_by_case_number"),
    ]
    logged = " ".join(str(dict(row)) for row in await fetch(database, "SELECT * FROM access_log"))
    for value in ("ヤマダ", "1968", "1234"):
        assert value not in logged


@pytest.mark.parametrize(("role", "status"), [
    ("coordinator", 200), ("cashier", 200), ("physician", 200), ("auditor", 403), ("privacy_officer", 403)])
async def test_the_desk_the_counter_and_the_physicians_may_search(intake: httpx.AsyncClient, role: str,
                                                                  status: int) -> None:
    response = await intake.get("/cases/search", params={"name": KANJI}, headers=bearer(role, subject=f"{role}-1"))
    assert response.status_code == status, response.text


@pytest.mark.parametrize("params", [
    {}, {"case_number": "case 12"}, {"birth_date": "April"}, {"phone": "x"}, {"name": " \u3000"},
    {"name": KANJI, "department": "cardiology"}, {"name": KANJI, "limit": "0"},
])
async def test_a_search_it_cannot_do_is_refused_with_422(intake: httpx.AsyncClient, params: dict[str, str]) -> None:
    response = await intake.get("/cases/search", params=params)
    assert response.status_code == 422, response.text
    assert "山田" not in response.text


async def test_a_corrected_name_phone_or_birth_date_finds_the_case_and_the_old_one_no_longer_does(
        intake: httpx.AsyncClient) -> None:
    case_id = (await submit_yamada(intake))["case_id"]
    corrected = await intake.post(f"/cases/{case_id}/corrections", json={
        "reason": "typing_error", "patient": {"name": "山田 花代", "birth_date": "1968-04-02"},
        "requester": {"phone": "090-1111-2222"}})
    assert corrected.status_code == 201, corrected.text
    found = [case["case_id"] for case in await search(intake, name="山田花代", birth_date="1968/4/2")]
    assert found == [case_id]
    assert [case["case_id"] for case in await search(intake, phone="09011112222")] == [case_id]
    assert await search(intake, birth_date="1968-04-01") == []
    assert await search(intake, phone="03-1234-5678") == []
    assert [case["case_id"] for case in await search(intake, name=KANA)] == [case_id], "the kana was not corrected"


async def test_a_reindex_finds_the_cases_submitted_before_the_index_and_leaves_erased_ones_out(
        intake: httpx.AsyncClient, database: str, rabbitmq_url: str, clock: SettableClock) -> None:
    yamada = await submit_yamada(intake)
    erased = await submit(intake, patient={"name": "消去 される", "birth_date": "1950-01-01"})
    # As migration 0007 left the cases submitted before it: numbered, but not in the index.
    await fetch(database, "DELETE FROM case_search_index")
    assert await search(intake, name=KANA) == []
    clock.set_tokyo("2032-12-02", time(10, 0))  # past the retention period
    assert (await erase_personal_data(intake, erased["case_id"])).status_code == 200

    settings = IntakeSettings(INTAKE_DATABASE_URL=database, RABBITMQ_URL=rabbitmq_url)
    assert await reindex_search(settings) == "search index rebuilt for 1 case(s); 1 erased case(s) left out"
    [found] = await search(intake, name=KANJI, phone="03-1234-5678")
    assert found["case_id"] == yamada["case_id"]
    assert await search(intake, name="消去される") == []
    # Run again, it changes nothing: the same rows, none twice.
    before = await fetch(database, "SELECT kind, digest, case_id FROM case_search_index ORDER BY 1, 2")
    await reindex_search(settings)
    assert await fetch(database, "SELECT kind, digest, case_id FROM case_search_index ORDER BY 1, 2") == before


async def test_after_the_key_changes_a_reindex_writes_every_digest_under_the_new_key(
        intake: httpx.AsyncClient, database: str, rabbitmq_url: str) -> None:
    case = await submit_yamada(intake)
    new_key = "a-new-search-index-key-of-32-bytes!!"
    settings = IntakeSettings(INTAKE_DATABASE_URL=database, RABBITMQ_URL=rabbitmq_url,
                              INTAKE_SEARCH_INDEX_KEY=new_key)
    await reindex_search(settings)
    rows = await fetch(database, "SELECT kind, digest FROM case_search_index WHERE case_id = $1::uuid",
                       case["case_id"])
    expected = BlindIndex(new_key.encode()).entries(names=(KANJI, KANA), birth_date=date(1968, 4, 1),
                                                    phone="03-1234-5678")
    assert sorted((row["kind"], bytes(row["digest"])) for row in rows) == expected
    # The service still running under the old key no longer finds the case by name: only by its number.
    assert await search(intake, name=KANA) == []
    assert len(await search(intake, case_number=case["case_number"])) == 1


async def test_the_reindex_is_a_command_of_intake(intake: httpx.AsyncClient, database: str, rabbitmq_url: str) -> None:
    await submit_yamada(intake)
    await fetch(database, "DELETE FROM case_search_index")
    command = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "intake", "reindex-search", stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "INTAKE_DATABASE_URL": database, "RABBITMQ_URL": rabbitmq_url})
    _, said = await command.communicate()
    assert command.returncode == 0, said.decode()
    assert "intake: search index rebuilt for 1 case(s); 0 erased case(s) left out" in said.decode()
    assert len(await search(intake, name=KANA)) == 1


async def accept(client: httpx.AsyncClient, case_id: str) -> None:
    for kind in ("application_form", "referral_letter", "test_results"):
        received = await client.post(f"/cases/{case_id}/documents", json={"kind": kind, "received_on": "2026-12-01"})
        assert received.status_code == 201, received.text
    accepted = await client.post(f"/cases/{case_id}/screening", json={"decision": "accept", "physician": "dr-sato"},
                                 headers=bearer("physician", subject="dr-sato"))
    assert accepted.json()["status"] == "accepted", accepted.text


COUNTER = bearer("cashier", subject="cashier-3")


async def test_the_cashier_reads_the_names_of_accepted_cases_only_and_each_read_is_logged(
        intake: httpx.AsyncClient, database: str, clock: SettableClock) -> None:
    yamada = await submit_yamada(intake)
    waiting = await submit(intake, patient={"name": "佐藤 花子"})
    await accept(intake, yamada["case_id"])
    answer = await intake.get("/cases/names-for-counter", headers=COUNTER,
                              params=[("case_id", yamada["case_id"]), ("case_id", waiting["case_id"])])
    assert answer.status_code == 200, answer.text
    [case] = answer.json()["cases"]
    assert (case["case_id"], case["case_number"]) == (yamada["case_id"], yamada["case_number"])
    assert case["patient"] == {"name": KANJI, "name_kana": KANA}
    assert case["requester"] == {"relationship": "self", "name": KANJI}
    assert not {"phone", "birth_date", "postal_address", "question"} & {*case, *case["patient"], *case["requester"]}
    reads = await fetch(database, "SELECT actor_id, actor_role, case_id, action FROM access_log"
                                  " WHERE action = 'read_case_names_for_counter'")
    assert [(r["actor_id"], r["actor_role"], r["case_id"]) for r in reads] == [
        ("cashier-3", "cashier", yamada["case_id"])], "the case left out is not read"

    # Erased, the names are masked; the number stays what the counter finds the case by.
    clock.set_tokyo("2032-12-02", time(10, 0))  # past the retention period
    assert (await erase_personal_data(intake, yamada["case_id"])).status_code == 200
    [erased] = (await intake.get("/cases/names-for-counter", headers=COUNTER,
                                 params={"case_id": yamada["case_id"]})).json()["cases"]
    assert (erased["patient"]["name"], erased["personal_data_erased_on"]) == ("***", "2032-12-02")


@pytest.mark.parametrize(("role", "status"), [
    ("cashier", 200), ("coordinator", 403), ("physician", 403), ("auditor", 403), ("privacy_officer", 403)])
async def test_only_the_cashier_reads_names_for_the_counter(intake: httpx.AsyncClient, role: str,
                                                            status: int) -> None:
    case = await submit_yamada(intake)
    response = await intake.get("/cases/names-for-counter", params={"case_id": case["case_id"]},
                                headers=bearer(role, subject=f"{role}-1"))
    assert response.status_code == status, response.text


@pytest.mark.parametrize("params", [
    {}, {"case_id": "SO-2026-00001"}, [("case_id", str(uuid.uuid4())) for _ in range(101)]])
async def test_names_for_the_counter_need_one_to_a_hundred_case_ids(intake: httpx.AsyncClient,
                                                                    params: Any) -> None:
    response = await intake.get("/cases/names-for-counter", params=params, headers=COUNTER)
    assert response.status_code == 422, response.text
