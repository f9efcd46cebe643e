"""The desk's lists in a real browser: paged by intake's cursor (more cases than a page: the next page shows the
rest, and back to the first), narrowed by intake (department, age of the case, status), with the departments named
as intake's catalogue names them (an intake offering other departments than the default)."""

from __future__ import annotations

from datetime import time
from urllib.parse import unquote

import pytest
from playwright.async_api import Page, expect

from desk import coordinator
from desk.testing import TODAY, Console, accepted_case, accessible, booked_case, console, phoned_case

OFFERED = ("pediatrics", "neurology", "cardiology")  # not intake's default list, nor its order


async def submit_cases(c: Console) -> dict[str, list[str]]:
    """15 cases waiting for documents: 8 of pediatrics 31 days old, 4 of pediatrics 7 days old, 3 of neurology 2
    days old (each submitted by an intake whose clock says so)."""
    made: dict[str, list[str]] = {"old": [], "week": [], "neurology": []}
    for key, day, department, count in (("old", "2026-11-01", "pediatrics", 8), ("week", "2026-11-25", "pediatrics", 4),
                                        ("neurology", "2026-11-30", "neurology", 3)):
        c.clock.set_tokyo(day, time(10, 0))
        for n in range(count):
            answer = await c.services["intake"].post("/cases", headers=c.as_staff("coordinator"), json={
                "requester": {"relationship": "self", "name": f"一覧 {key}{n}"},
                "patient": {"name": f"一覧 {key}{n}", "birth_date": "1970-01-01"}, "mode": "online",
                "department": department, "question": "q",
                "attending_physician": {"name": "Dr", "institution": "Clinic", "consents": True},
                "wants_treatment_here": False, "complaint_or_litigation": False})
            assert answer.status_code == 201, answer.text
            made[key].append(answer.json()["case_id"])
    c.clock.set_tokyo(TODAY, time(10, 0))
    return made


async def listed(page: Page, rows: str) -> list[str]:
    return [str(await row.get_attribute("data-case-id")) for row in await page.locator(rows).all()]


def free_of_names(page: Page) -> None:
    assert "一覧" not in unquote(page.url), page.url


async def test_the_queue_pages_by_cursor_and_is_narrowed_by_intake_with_intakes_department_names(
        rabbitmq_url: str) -> None:
    async with console(rabbitmq_url, intake_departments=OFFERED) as c:
        made = await submit_cases(c)
        page = await c.page()
        await c.sign_in(page, "coord-1", "coordinator")
        await expect(page.locator("#department option")).to_have_text(["すべて", "小児科", "脳神経内科", "循環器内科"])

        documents = "#queue-documents tbody tr"
        await expect(page.locator(documents)).to_have_count(10)
        await expect(page.locator("#queue-documents .count")).to_have_text("10+")
        first = await listed(page, documents)
        assert set(first[:8]) == set(made["old"]), "the longest waiting first"
        await page.locator("#queue-documents .pager").get_by_role("link", name="次へ").click()
        await expect(page.locator(documents)).to_have_count(5)
        rest = await listed(page, documents)
        assert set(first) | set(rest) == {case for cases in made.values() for case in cases}
        assert not set(first) & set(rest)
        assert "documents_cursor=" in page.url
        free_of_names(page)
        await expect(page.locator("#queue-documents .pager").get_by_role("link", name="次へ")).to_have_count(0)
        await accessible(page, "queue-next-page")
        await page.locator("#queue-documents .pager").get_by_role("link", name="最初へ").click()
        await expect(page.locator(documents)).to_have_count(10)
        assert await listed(page, documents) == first

        await page.get_by_label("診療科").select_option(label="脳神経内科")
        await page.get_by_role("button", name="絞り込み").click()
        await expect(page.locator(documents)).to_have_count(3)
        assert set(await listed(page, documents)) == set(made["neurology"])
        await expect(page.locator(documents).first).to_contain_text("脳神経内科")

        await page.get_by_label("診療科").select_option(label="すべて")
        await page.get_by_label("経過日数").select_option("30")
        await page.get_by_role("button", name="絞り込み").click()
        await expect(page.locator(documents)).to_have_count(8)
        assert set(await listed(page, documents)) == set(made["old"])
        await expect(page.locator("#queue-documents .pager")).to_have_count(0)
        free_of_names(page)


async def test_the_case_list_and_the_screening_queue_page_by_cursor_and_filter_through_intake(
        rabbitmq_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(coordinator, "BOARD_CARDS", 5)
    async with console(rabbitmq_url, intake_departments=OFFERED) as c:
        made = await submit_cases(c)
        page = await c.page()
        await c.sign_in(page, "coord-1", "coordinator")
        await page.get_by_role("link", name="案件一覧").click()
        rows = "tbody tr"
        await expect(page.locator(rows)).to_have_count(10)
        newest = await listed(page, rows)
        assert set(newest[:3]) == set(made["neurology"]), "the newest first"
        await page.get_by_role("link", name="次へ").click()
        await expect(page.locator(rows)).to_have_count(5)
        assert not set(await listed(page, rows)) & set(newest)
        free_of_names(page)
        await page.get_by_role("link", name="最初へ").click()
        await expect(page.locator(rows)).to_have_count(10)

        await page.get_by_label("診療科").select_option(label="小児科")
        await page.get_by_label("経過日数").select_option("7")
        await page.get_by_label("状態").select_option("submitted")
        await page.get_by_role("button", name="絞り込み").click()
        await expect(page.locator(rows)).to_have_count(10)
        await expect(page.locator(rows).filter(has_text="小児科")).to_have_count(10)
        await page.get_by_role("link", name="次へ").click()
        await expect(page.locator(rows)).to_have_count(2)
        assert "department=pediatrics" in page.url
        assert "min_age=7" in page.url
        await accessible(page, "case-list-filtered")
        await page.get_by_label("状態").select_option("declined")
        await page.get_by_role("button", name="絞り込み").click()
        await expect(page.locator(".empty")).to_be_visible()

        # The screening queue: the same cases once their documents are in, narrowed and paged by intake too.
        for case_id in made["old"] + made["neurology"]:
            for kind in ("application_form", "referral_letter", "test_results"):
                answer = await c.services["intake"].post(f"/cases/{case_id}/documents", headers=c.as_staff(
                    "coordinator"), json={"kind": kind, "received_on": "2026-12-01"})
                assert answer.status_code == 201, answer.text
        doctor = await c.page()
        await c.sign_in(doctor, "dr-sato", "physician")
        await expect(doctor.locator("tbody tr")).to_have_count(11)
        await doctor.get_by_label("診療科").select_option(label="小児科")
        await doctor.get_by_label("経過日数").select_option("30")
        await doctor.get_by_role("button", name="絞り込み").click()
        await expect(doctor.locator("tbody tr")).to_have_count(8)
        assert set(await listed(doctor, "tbody tr")) == set(made["old"])

        # The board shows each column's latest cards only; a longer column links to its full list, paged.
        await page.goto(f"{c.url}/board")
        screening = page.locator('[data-column="screening"]')
        await expect(screening.locator(".count")).to_have_text("11", timeout=15_000)
        await expect(screening.locator("li")).to_have_count(5)
        await screening.get_by_role("link", name="すべて表示（案件一覧）").click()
        await expect(page.locator(rows)).to_have_count(10)
        await page.get_by_role("link", name="次へ").click()
        await expect(page.locator(rows)).to_have_count(1)


async def test_the_queues_lists_from_the_board_are_narrowed_by_reporting_and_say_when_they_are_cut(
        rabbitmq_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(coordinator, "BOARD_COLUMN_MAX", 2)  # as if more cases waited than reporting gives at once
    async with console(rabbitmq_url, intake_departments=OFFERED) as c:
        accepted: dict[str, list[str]] = {"pediatrics": [], "neurology": []}
        for department, count in (("pediatrics", 3), ("neurology", 1)):
            for n in range(count):
                case_id, _ = await accepted_case(c, phoned_case(f"一覧 受諾{n}", department=department,
                                                                mode="online"))
                accepted[department].append(case_id)
        page = await c.page()
        await c.sign_in(page, "coord-1", "coordinator")
        dates = "#queue-dates tbody tr"
        await expect(page.locator("#queue-dates .count")).to_have_text("2", timeout=15_000)
        await expect(page.locator("#queue-truncated")).to_be_visible()
        # Narrowed to neurology, reporting gives its one case: the list is whole.
        await page.get_by_label("診療科").select_option(label="脳神経内科")
        await page.get_by_role("button", name="絞り込み").click()
        await expect(page.locator(dates)).to_have_count(1)
        assert await listed(page, dates) == accepted["neurology"]
        await expect(page.locator("#queue-truncated")).to_have_count(0)


async def test_a_physicians_consultations_are_theirs_only_a_week_to_a_page(rabbitmq_url: str) -> None:
    async with console(rabbitmq_url) as c:
        this_week, _ = await booked_case(c, phoned_case("一覧 今週"), "2026-12-03", "10:00")
        next_week, _ = await booked_case(c, phoned_case("一覧 来週"), "2026-12-10", "10:00")
        colleagues, _ = await booked_case(c, phoned_case("一覧 同僚"), "2026-12-03", "11:00", physician="dr-kato")
        doctor = await c.page()
        await c.sign_in(doctor, "dr-sato", "physician")
        await doctor.get_by_role("link", name="担当の相談").click()
        rows = "#consultations tbody tr"
        await expect(doctor.locator("#consultation-days")).to_have_text("2026/12/02〜2026/12/08")
        assert await listed(doctor, rows) == [this_week], "dr-kato's consultation is not dr-sato's"
        await accessible(doctor, "consultations")
        pager = doctor.locator(".pager")
        await pager.get_by_role("link", name="次へ").click()
        await expect(doctor.locator("#consultation-days")).to_have_text("2026/12/09〜2026/12/15")
        assert await listed(doctor, rows) == [next_week]
        await pager.get_by_role("link", name="前へ").click()
        await pager.get_by_role("link", name="前へ").click()
        await expect(doctor.locator("#consultation-days")).to_have_text("2026/11/25〜2026/12/01")
        await expect(doctor.locator(".empty")).to_be_visible()
        await pager.get_by_role("link", name="今日から").click()
        await expect(doctor.locator("#consultation-days")).to_have_text("2026/12/02〜2026/12/08")
        await expect(pager.get_by_role("link", name="今日から")).to_have_count(0)
        for edited in ("9999-12-31", "0001-01-01"):  # an address edited by hand, off the calendar: today's week
            answer = await doctor.goto(f"{c.url}/consultations?from={edited}")
            assert answer is not None
            assert answer.status == 200, edited
            await expect(doctor.locator("#consultation-days")).to_have_text("2026/12/02〜2026/12/08")
        answer = await doctor.goto(f"{c.url}/consultations?from=someday")
        assert answer is not None
        assert answer.status == 422
        kato = await c.page()
        await c.sign_in(kato, "dr-kato", "physician")
        await kato.get_by_role("link", name="担当の相談").click()
        assert await listed(kato, rows) == [colleagues]
