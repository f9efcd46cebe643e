"""The issue's end-to-end test, in a real browser: a case from the phone call to the closed case, entirely
through the console's pages, signed in as coordinator, physician and cashier in turn, against the real four
services, broker and databases. Every main page is checked with axe-core and photographed for the guide."""

from __future__ import annotations

import json
import logging
import re
from datetime import time

import pytest
from playwright.async_api import Page, expect

from desk.testing import TODAY, Console, Hands, accessible, console

CONSULTATION_DAY = TODAY.replace(day=TODAY.day + 1)  # Thursday 2026-12-03
PATIENT = "山田 花子"


async def new_case(c: Console, page: Page, hands: Hands, *, mode: str = "in_person", relationship: str = "self",
                   patient_consents: bool = True, screenshot: str | None = None) -> str:
    """The coordinator takes a phone call: the form typed as staff type it (full-width digits, 1968/04/01)."""
    await hands.click(page.get_by_role("link", name="新規受付（電話）"))
    await hands.select(page.get_by_label("続柄"), relationship)
    if relationship != "self":
        await hands.fill(page.locator("#requester_name"), "山田 一郎")
    await hands.fill(page.locator("#requester_phone"), "０３－１２３４－５６７８")
    await hands.fill(page.locator("#patient_name"), PATIENT)
    await hands.fill(page.locator("#patient_birth_date"), "１９６８/０４/０１")
    if patient_consents:
        await hands.check(page.get_by_label("患者本人が同意している"))
    await hands.select(page.get_by_label("相談方法"), mode)
    await hands.select(page.get_by_label("診療科"), label="循環器内科")
    await hands.fill(page.get_by_label("相談内容"), "手術とカテーテル治療のどちらがよいか")
    await hands.fill(page.locator("#attending_name"), "佐藤 一郎")
    await hands.fill(page.locator("#attending_institution"), "港クリニック")
    await hands.check(page.get_by_label("主治医が同意している"))
    if screenshot:
        await accessible(page, hands.shot(screenshot))
    await hands.click(page.get_by_role("button", name="受け付ける"))
    await expect(page.locator(".flash")).to_contain_text("記録しました")
    match = re.search(r"/cases/([0-9a-f-]{36})", page.url)
    assert match, page.url
    return match.group(1)


async def printed(c: Console, page: Page, link: str, *, refused: list[Page]) -> None:
    """Follow a document's link as the page shows it: a PDF under the service's file name (ids only) for the
    person on the page, 403 for each of `refused` (people without the role)."""
    href = await page.locator(link).get_attribute("href")
    assert href is not None
    assert href.endswith(".pdf"), href
    answer = await page.request.get(f"{c.url}{href}")
    assert answer.status == 200, await answer.text()
    assert answer.headers["content-type"] == "application/pdf"
    assert (await answer.body()).startswith(b"%PDF")
    disposition = answer.headers["content-disposition"]
    assert re.fullmatch(r'inline; filename="[a-z-]+-[A-Za-z0-9-]+\.pdf"', disposition), disposition
    assert PATIENT not in disposition
    for other in refused:
        refusal = await other.request.get(answer.url)
        assert refusal.status == 403, (answer.url, refusal.status)
        assert not (await refusal.body()).startswith(b"%PDF")


async def record_documents(page: Page, hands: Hands, *kinds: str) -> None:
    for kind in kinds:
        await hands.select(page.locator("#kind"), kind)
        await hands.fill(page.locator("#received_on"), "２０２６/１２/０２")
        await hands.click(page.get_by_role("button", name="書類の受領を記録"))
        await expect(page.locator(".flash")).to_contain_text("記録しました")


HANDS = pytest.mark.parametrize("hands", [Hands(), Hands(keyboard=True)], ids=repr)


@HANDS
async def test_an_in_person_case_from_the_phone_call_to_the_closed_case_through_the_pages(
        rabbitmq_url: str, caplog: pytest.LogCaptureFixture, hands: Hands) -> None:
    caplog.set_level(logging.DEBUG)
    async with console(rabbitmq_url) as c:
        desk = await c.page()
        await c.sign_in(desk, "coord-1", "coordinator")
        await accessible(desk, hands.shot("queue-empty"))
        case_id = await new_case(c, desk, hands, screenshot="new-case")
        await expect(desk.locator("#status")).to_have_text("受付")
        await expect(desk.locator("#documents .missing").first).to_contain_text("申込書")
        await record_documents(desk, hands, "application_form", "referral_letter", "test_results")
        await expect(desk.locator("#status")).to_have_text("審査中")
        await expect(desk.locator("#documents .missing")).to_have_count(0)
        assert PATIENT not in (await desk.title()), "no personal data in the page title"
        assert case_id in desk.url
        assert "%E5" not in desk.url

        # Slots for the physician, typed as staff type them.
        await hands.click(desk.get_by_role("link", name="相談枠の登録"))
        await hands.fill(desk.locator("#physician_id"), "dr-sato")
        await hands.fill(desk.locator("#from"), "２０２６/１２/０３")
        await hands.fill(desk.locator("#to"), "2026年12月3日")
        await hands.fill(desk.locator("#start_times"), "１０：００、14:00")
        await hands.click(desk.get_by_role("button", name="枠を登録"))
        await expect(desk.locator(".flash")).to_contain_text("相談枠を登録しました")
        await expect(desk.locator(".calendar .slot-open")).to_have_count(2)
        await accessible(desk, hands.shot("slots"))

        # The physician screens the case and accepts it.
        doctor = await c.page()
        await c.sign_in(doctor, "dr-sato", "physician")
        await expect(doctor.locator(f'[data-case-id="{case_id}"]')).to_be_visible()
        await accessible(doctor, hands.shot("screening-queue"))
        await hands.click(doctor.locator(f'[data-case-id="{case_id}"] a'))
        await hands.click(doctor.get_by_role("button", name="受諾"))
        await expect(doctor.locator("#status")).to_have_text("受諾")

        # Back at the desk: the case page waits for scheduling to hear of it, then offers dates by itself.
        await desk.goto(f"{c.url}/cases/{case_id}")
        await expect(desk.locator("#schedule .badge")).to_have_text("日程提示待ち", timeout=15_000)
        await accessible(desk, hands.shot("case-accepted"))
        await hands.check(desk.locator('#schedule input[name="slot_ids"]').first)
        await hands.check(desk.locator('#schedule input[name="slot_ids"]').nth(1))
        await hands.click(desk.get_by_role("button", name="候補日を提示"))
        await expect(desk.locator("#schedule .badge").first).to_have_text("患者の選択待ち")
        await hands.click(desk.get_by_role("button", name="患者の選択を記録"))
        await expect(desk.locator("#schedule .badge").first).to_have_text("予約確定")
        await expect(desk.locator("#appointment-start")).to_have_text("2026/12/03 10:00")
        await printed(c, desk, "#slip-pdf", refused=[doctor])

        # The consultation day: the cashier takes the fee at the counter.
        c.clock.set_tokyo(CONSULTATION_DAY, time(9, 30))
        cashier = await c.page()
        await c.sign_in(cashier, "cash-1", "cashier")
        row = cashier.locator(f'[data-case-id="{case_id}"]')
        await expect(row).to_contain_text("¥33,000", timeout=15_000)
        await accessible(cashier, hands.shot("counter"))
        await hands.click(row.get_by_role("link", name="開く"))
        await hands.fill(cashier.locator("#amount"), "３２，０００")
        await hands.click(cashier.get_by_role("button", name="相談料を受け取る"))
        await expect(cashier.locator("#payment-refusal")).to_contain_text("金額が請求額と一致しません")
        await hands.fill(cashier.locator("#amount"), "３３，０００円")
        await hands.click(cashier.get_by_role("button", name="相談料を受け取る"))
        await expect(cashier.locator("#invoice-status")).to_have_text("入金済み")
        await hands.click(cashier.get_by_role("button", name="領収書を発行"))
        await expect(cashier.locator("#receipt-printed")).to_contain_text(PATIENT)
        await accessible(cashier, hands.shot("invoice"))
        await printed(c, cashier, "#receipt-pdf", refused=[desk, doctor])
        await hands.click(cashier.get_by_role("link", name="本日の売上"))
        await expect(cashier.locator("#takings-net")).to_have_text("¥33,000")
        await accessible(cashier, hands.shot("takings"))

        # The physician sees the patient and writes the report.
        c.clock.set_tokyo(CONSULTATION_DAY, time(11, 5))
        await doctor.goto(f"{c.url}/cases/{case_id}")
        await complete_once_paid(doctor, hands)
        await hands.click(doctor.get_by_role("link", name="報告書を書く"))
        await hands.fill(doctor.get_by_label("所見"), "手術が妥当です。カテーテル治療も選択肢になります。")
        await save_once_consulted(doctor, hands)
        await accessible(doctor, hands.shot("report-editor"))
        await hands.click(doctor.get_by_role("button", name="確定"))
        await expect(doctor.locator("#report-status")).to_have_text("確定")
        await doctor.goto(f"{c.url}/cases/{case_id}")
        await printed(c, doctor, "#report-pdf", refused=[])
        await accessible(doctor)

        # The desk hands the report over: the case closes.
        await desk.goto(f"{c.url}/cases/{case_id}")
        await printed(c, desk, "#report-pdf", refused=[cashier])
        await hands.click(desk.get_by_role("button", name="交付を記録"))
        await expect(desk.locator("#report .badge")).to_have_text("交付済み")
        await printed(c, desk, "#report-pdf", refused=[])
        await expect(desk.locator('#timeline tr[data-event="CaseClosed"]')).to_contain_text("案件完了",
                                                                                             timeout=15_000)
        await accessible(desk, hands.shot("case-closed"))
        await hands.click(desk.get_by_role("link", name="案件ボード"))
        await expect(desk.locator(f'[data-column="closed"] [data-case-id="{case_id}"]')).to_be_visible()
        # The card shows the case number CaseSubmitted carried, not the UUID.
        await expect(desk.locator(f'[data-case-id="{case_id}"] a')).to_have_text(re.compile(r"^SO-2026-\d{5}$"))
        # The KPIs the reporting dashboard showed, in words: the fee taken, the business days to the consultation.
        await expect(desk.locator("#kpi-fees")).to_have_text("¥33,000")
        await expect(desk.locator("#kpi-submission_to_consultation")).to_contain_text("中央値")
        await expect(desk.locator("#kpi-stages")).to_contain_text("完了")
        await accessible(desk, hands.shot("board"))
        await hands.fill(desk.locator("#kpi-from"), "12月")
        await hands.click(desk.get_by_role("button", name="表示"))
        await expect(desk.locator("#from-error")).to_contain_text("2026/12/02 のように")
        await expect(desk.locator(f'[data-column="closed"] [data-case-id="{case_id}"]')).to_be_visible()

        # A goodwill refund of part of the fee: the till's takings follow.
        await hands.click(cashier.get_by_role("link", name="本日の売上"))
        await hands.click(cashier.locator("tbody a.mono").first)
        await hands.fill(cashier.locator("#refund_amount"), "１，０００")
        await hands.select(cashier.locator("#refund_reason"), "goodwill")
        await hands.click(cashier.get_by_role("button", name="返金"))
        await expect(cashier.locator("#invoice-status")).to_have_text("一部返金")
        await printed(c, cashier, "#refund-pdf", refused=[desk])
        await hands.click(cashier.get_by_role("link", name="本日の売上"))
        await expect(cashier.locator("#takings-net")).to_have_text("¥32,000")

    leaked = [record.getMessage() for record in caplog.records
              if PATIENT in record.getMessage() or PATIENT in json.dumps(record.__dict__, default=str,
                                                                          ensure_ascii=False)]
    assert not leaked, f"the patient's name is in a log record: {leaked[:1]}"
    assert any(record.name.startswith("desk") for record in caplog.records), "the desk's own logs were captured"


async def complete_once_paid(page: Page, hands: Hands) -> None:
    """Scheduling hears of the payment through the bus: until then it refuses, and the page says why."""
    for _ in range(40):
        await hands.click(page.get_by_role("button", name="相談完了"))
        if await page.locator("#complete-refusal").count() == 0:
            break
        await expect(page.locator("#complete-refusal")).to_contain_text("相談料が未収です")
        await page.wait_for_timeout(250)
    await expect(page.locator("#schedule h3 .badge")).to_have_text("完了")


async def save_once_consulted(page: Page, hands: Hands) -> None:
    for _ in range(40):
        await hands.click(page.get_by_role("button", name="下書き保存"))
        if await page.locator("#report-refusal").count() == 0:
            break
        await page.wait_for_timeout(250)
    await expect(page.locator(".flash")).to_contain_text("下書きを保存しました")


@HANDS
async def test_an_online_case_whose_card_is_declined_is_charged_again_and_closed_by_the_posted_report(
        rabbitmq_url: str, hands: Hands) -> None:
    async with console(rabbitmq_url) as c:
        desk = await c.page()
        await c.sign_in(desk, "coord-1", "coordinator")
        case_id = await new_case(c, desk, hands, mode="online")
        await record_documents(desk, hands, "application_form", "referral_letter", "test_results")
        await hands.click(desk.get_by_role("link", name="相談枠の登録"))
        await hands.fill(desk.locator("#physician_id"), "dr-sato")
        await hands.fill(desk.locator("#from"), "2026/12/03")
        await hands.fill(desk.locator("#to"), "2026/12/03")
        await hands.fill(desk.locator("#start_times"), "11:00")
        await hands.click(desk.get_by_role("button", name="枠を登録"))
        await expect(desk.locator(".flash")).to_contain_text("相談枠を登録しました")

        doctor = await c.page()
        await c.sign_in(doctor, "dr-sato", "physician")
        await doctor.goto(f"{c.url}/cases/{case_id}")
        await hands.click(doctor.get_by_role("button", name="受諾"))
        await expect(doctor.locator("#status")).to_have_text("受諾")

        await desk.goto(f"{c.url}/queue")
        await expect(desk.locator(f'#queue-dates [data-case-id="{case_id}"]')).to_be_visible(timeout=15_000)
        await hands.click(desk.locator(f'#queue-dates [data-case-id="{case_id}"] a'))
        await hands.check(desk.locator('#schedule input[name="slot_ids"]').first)
        await hands.click(desk.get_by_role("button", name="候補日を提示"))
        await hands.click(desk.get_by_role("button", name="患者の選択を記録"))
        await expect(desk.locator("#schedule h3 .badge")).to_have_text("予約")
        await desk.goto(f"{c.url}/queue")
        await expect(desk.locator(f'#queue-clinics [data-case-id="{case_id}"]')).to_be_visible(timeout=15_000)
        await accessible(desk, hands.shot("queue"))
        await hands.click(desk.locator(f'#queue-clinics [data-case-id="{case_id}"] a'))
        await hands.fill(desk.locator("#clinics_booking_ref"), "ＣＬＩＮＩＣＳ－２０２６－０００１２３")
        await hands.click(desk.get_by_role("button", name="記録する"))
        await expect(desk.locator("#schedule")).to_contain_text("CLINICS-2026-000123")

        # The consultation online; the card on the platform is declined once.
        c.simulator.faults.append(("decline", 0.0))
        c.clock.set_tokyo(CONSULTATION_DAY, time(11, 30))
        await doctor.goto(f"{c.url}/cases/{case_id}")
        await hands.click(doctor.get_by_role("button", name="相談完了"))
        await expect(doctor.locator("#schedule h3 .badge")).to_have_text("完了")

        cashier = await c.page()
        await c.sign_in(cashier, "cash-1", "cashier")
        failed = cashier.locator("table tbody tr")
        for _ in range(60):
            await cashier.goto(f"{c.url}/failed-charges")
            if await failed.count():
                break
            await cashier.wait_for_timeout(250)
        await expect(failed).to_contain_text("カードが承認されませんでした")
        await expect(failed).to_contain_text(PATIENT)  # whom to call before the retry
        await accessible(cashier, hands.shot("failed-charges"))
        await hands.click(failed.get_by_role("link"))
        await hands.click(cashier.get_by_role("button", name="決済を再試行"))
        await expect(cashier.locator("#invoice-status")).to_have_text("入金済み", timeout=15_000)
        assert [charge["amount"] for charge in c.simulator.charges] == [44_000]

        await hands.click(doctor.get_by_role("link", name="報告書を書く"))
        await hands.fill(doctor.get_by_label("所見"), "経過観察が妥当です。")
        await save_once_consulted(doctor, hands)
        await hands.click(doctor.get_by_role("button", name="確定"))
        await expect(doctor.locator("#report-status")).to_have_text("確定")

        await desk.goto(f"{c.url}/cases/{case_id}")
        await expect(desk.locator("#channel")).to_have_value("posted_to_attending_physician")
        await hands.select(desk.locator("#channel"), "handed_to_patient")
        await hands.click(desk.get_by_role("button", name="交付を記録"))
        await expect(desk.locator("#delivery-refusal")).to_contain_text("この交付方法は使えません")
        await hands.select(desk.locator("#channel"), "posted_to_attending_physician")
        await hands.click(desk.get_by_role("button", name="交付を記録"))
        await expect(desk.locator('#timeline tr[data-event="CaseClosed"]')).to_be_visible(timeout=15_000)
