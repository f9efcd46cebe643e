"""What the privacy officers' pages read, on the real PostgreSQL: where a case's erasure stands (its dates, the end
of its retention period, the request waiting for a second officer), the requests waiting (paged, in the access log),
finding a case by its number only, and the roles; no personal data in any answer."""

from __future__ import annotations

from datetime import time

import httpx
import pytest

from eventkit.testing import SettableClock, bearer, fetch

from .test_search_api import KANA, KANJI, clock, intake, submit_yamada  # noqa: F401  (fixtures)

OFFICER_1 = bearer("privacy_officer", subject="privacy-1")
OFFICER_2 = bearer("privacy_officer", subject="privacy-2")
AUDITOR = bearer("auditor", subject="audit-1")


async def standing(client: httpx.AsyncClient, case_id: str) -> dict[str, object]:
    response = await client.get(f"/cases/{case_id}/personal-data/erasure", headers=OFFICER_1)
    assert response.status_code == 200, response.text
    answer: dict[str, object] = response.json()
    return answer


async def test_a_cases_erasure_stands_with_its_retention_end_its_request_and_its_erasure(
        intake: httpx.AsyncClient, clock: SettableClock) -> None:  # noqa: F811
    case = await submit_yamada(intake)
    before = await standing(intake, case["case_id"])
    assert before == {"case_id": case["case_id"], "case_number": case["case_number"], "status": "submitted",
                      "department": "cardiology", "submitted_on": "2026-12-01",
                      "last_activity_on": before["last_activity_on"],
                      "retention_ends_on": before["retention_ends_on"], "personal_data_erased_on": None,
                      "request": None}
    last = str(before["last_activity_on"])
    assert before["retention_ends_on"] == f"{int(last[:4]) + 5}{last[4:]}", "five years after the last activity"
    for text in (KANJI, KANA, "1968", "03-1234"):
        assert text not in str(before)

    early = await intake.post(f"/cases/{case['case_id']}/personal-data/erasure", headers=OFFICER_1)
    assert (early.status_code, early.json()["code"]) == (409, "retention_period")
    clock.set_tokyo("2032-12-02", time(10, 0))
    requested = await intake.post(f"/cases/{case['case_id']}/personal-data/erasure", headers=OFFICER_1)
    assert requested.status_code == 202, requested.text
    waiting = await standing(intake, case["case_id"])
    request = waiting["request"]
    assert isinstance(request, dict)
    assert (request["requested_by"], request["requested_on"]) == ("privacy-1", "2032-12-02")
    assert waiting["personal_data_erased_on"] is None

    approved = await intake.post(f"/cases/{case['case_id']}/personal-data/erasure/approval", headers=OFFICER_2)
    assert approved.status_code == 200, approved.text
    erased = await standing(intake, case["case_id"])
    assert (erased["personal_data_erased_on"], erased["request"]) == ("2032-12-02", None)
    by_auditor = await intake.get(f"/cases/{case['case_id']}/personal-data/erasure", headers=AUDITOR)
    assert by_auditor.status_code == 200
    unknown = await intake.get("/cases/00000000-0000-0000-0000-000000000001/personal-data/erasure", headers=OFFICER_1)
    assert unknown.status_code == 404


async def test_the_requests_waiting_for_approval_are_listed_a_page_at_a_time_and_logged(
        intake: httpx.AsyncClient, clock: SettableClock, database: str) -> None:  # noqa: F811
    cases = [await submit_yamada(intake) for _ in range(3)]
    clock.set_tokyo("2032-12-02", time(10, 0))
    for case in cases:
        answer = await intake.post(f"/cases/{case['case_id']}/personal-data/erasure", headers=OFFICER_1)
        assert answer.status_code == 202, answer.text
    approved = await intake.post(f"/cases/{cases[1]['case_id']}/personal-data/erasure/approval", headers=OFFICER_2)
    assert approved.status_code == 200, approved.text

    first = await intake.get("/personal-data/erasure-requests", params={"limit": 1}, headers=OFFICER_2)
    assert first.status_code == 200, first.text
    [row] = first.json()["requests"]
    assert (row["case_id"], row["case_number"], row["requested_by"], row["requested_on"]) == (
        cases[0]["case_id"], cases[0]["case_number"], "privacy-1", "2032-12-02")
    assert first.json()["next_offset"] == 1
    second = await intake.get("/personal-data/erasure-requests", params={"limit": 1, "offset": 1}, headers=AUDITOR)
    assert [r["case_id"] for r in second.json()["requests"]] == [cases[2]["case_id"]], "the approved one is gone"
    assert second.json()["next_offset"] is None
    assert KANJI not in first.text
    assert KANA not in first.text
    rows = await fetch(database,
                       "SELECT actor_id, action FROM access_log WHERE action LIKE 'list_erasure%' ORDER BY id")
    assert [(r["actor_id"], r["action"]) for r in rows] == [
        ("privacy-2", "list_erasure_requests?limit=1"), ("audit-1", "list_erasure_requests?limit=1&offset=1")]
    refused = await intake.get("/personal-data/erasure-requests", params={"limit": 0}, headers=OFFICER_1)
    assert refused.status_code == 422


@pytest.mark.parametrize(("path", "role", "status"), [
    ("/personal-data/erasure-requests", "coordinator", 403), ("/personal-data/erasure-requests", "physician", 403),
    ("/personal-data/erasure-requests", "cashier", 403), ("/personal-data/erasure-requests", "privacy_officer", 200),
    ("/cases/{case_id}/personal-data/erasure", "coordinator", 403),
    ("/cases/{case_id}/personal-data/erasure", "auditor", 200),
])
async def test_only_privacy_officers_and_auditors_read_where_erasures_stand(
        intake: httpx.AsyncClient, path: str, role: str, status: int) -> None:  # noqa: F811
    case = await submit_yamada(intake)
    answer = await intake.get(path.format(case_id=case["case_id"]), headers=bearer(role, subject=f"{role}-9"))
    assert answer.status_code == status, answer.text


async def test_a_privacy_officer_finds_a_case_by_its_number_only(intake: httpx.AsyncClient) -> None:  # noqa: F811
    case = await submit_yamada(intake)
    found = await intake.get("/cases/search", params={"case_number": case["case_number"]}, headers=OFFICER_1)
    assert found.status_code == 200, found.text
    assert [c["case_id"] for c in found.json()["cases"]] == [case["case_id"]]
    for params in ({"name": KANJI}, {"case_number": case["case_number"], "birth_date": "1968-04-01"}):
        refused = await intake.get("/cases/search", params=params, headers=OFFICER_1)
        assert refused.status_code == 403, params
