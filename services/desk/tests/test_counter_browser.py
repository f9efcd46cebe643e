"""The cashier's counter in a real browser, against the four services: the day's consultations with the patients'
names (so the cashier knows whose invoice is whose), the person at the counter found by name or case number however
typed, the invoice page naming whose it is, and the day's takings with billing's list of transactions, paged, for
closing the till. Names never reach a URL; each read is in intake's access log."""

from __future__ import annotations

from datetime import time
from urllib.parse import unquote

import pytest
from playwright.async_api import Page, expect

from desk import cashier
from desk.testing import accessible, booked_case, console, phoned_case

UMEKO, UMEKO_KANA = "山田 梅子", "ヤマダ ウメコ"
ICHIRO = "山田 一郎"  # Umeko's son, who asks for her
WAITING = "山田 花子"  # a case still waiting for its documents: not the counter's
CONSULTATION_DAY = "2026-12-03"


async def find(page: Page, typed: str) -> None:
    await page.locator("#who").fill(typed)
    await page.locator("#who").press("Enter")  # the keyboard's way, as the cashier types and sends


def free_of_names(page: Page) -> None:
    address = unquote(page.url)
    for name in ("山田", "ヤマダ", "ﾔﾏﾀﾞ", "梅子"):
        assert name not in address


async def test_the_cashier_knows_whose_invoice_is_whose_finds_the_person_and_closes_the_till(
        rabbitmq_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cashier, "TRANSACTIONS_PAGE", 2)
    async with console(rabbitmq_url) as c:
        umeko_id, umeko_number = await booked_case(c, phoned_case(UMEKO, patient={"name_kana": UMEKO_KANA}),
                                                   CONSULTATION_DAY, "10:00")
        family = {"relationship": "family", "name": ICHIRO, "phone": "090-1111-2222"}
        other = phoned_case("佐藤 次郎", requester=family, patient={"consents": True})
        other_id, other_number = await booked_case(c, other, CONSULTATION_DAY, "11:00")
        waiting = await c.services["intake"].post("/cases", json=phoned_case(WAITING),
                                                  headers=c.as_staff("coordinator"))
        assert waiting.status_code == 201, waiting.text
        c.clock.set_tokyo(CONSULTATION_DAY, time(9, 30))

        page = await c.page()
        await c.sign_in(page, "cash-1", "cashier")
        await page.get_by_role("link", name="本日の会計").click()
        today = page.locator("#today")
        umeko = today.locator(f'[data-case-id="{umeko_id}"]')
        await expect(umeko).to_contain_text(UMEKO)
        await expect(umeko).to_contain_text(UMEKO_KANA)
        await expect(umeko).to_contain_text(umeko_number)
        await expect(umeko).to_contain_text("¥33,000", timeout=15_000)  # the page updates once billing invoices
        relative = today.locator(f'[data-case-id="{other_id}"]')
        await expect(relative).to_contain_text("佐藤 次郎")
        await expect(relative).to_contain_text(f"申込者：{ICHIRO}（家族）")
        await expect(relative).to_contain_text(other_number)

        # Nothing typed: a message at the field, nothing searched.
        await find(page, "")
        await expect(page.locator("#who-error")).to_have_text("お名前か案件番号を入力してください")
        await expect(page.locator("#who")).to_have_attribute("aria-invalid", "true")
        # A name of a case not accepted yet: intake finds it, but it is not the counter's.
        await find(page, WAITING)
        await expect(page.locator("#h-found + .empty")).to_have_text("該当する受諾済みの案件はありません")
        # By the kana, in half-width katakana as some keyboards give it; then by the case number in full width.
        await find(page, "ﾔﾏﾀﾞ ｳﾒｺ")
        found = page.locator("#found tbody tr")
        await expect(found).to_have_count(1)
        await expect(found).to_contain_text(UMEKO)
        await expect(found).to_contain_text(umeko_number)
        await accessible(page, "counter-find")
        free_of_names(page)
        typed_number = other_number.translate({ord(ch): ord(ch) + 0xFEE0 for ch in "SO-0123456789"})
        await find(page, typed_number)
        await expect(found).to_have_count(1)
        await expect(found).to_contain_text("佐藤 次郎")
        await find(page, "SO-2026-99999")
        await expect(page.locator("#h-found + .empty")).to_be_visible()
        await find(page, "SO-20")  # no such case number: intake's reason, at the field
        await expect(page.locator("#who-error")).to_be_visible()

        # Umeko's invoice names her; the fee is taken.
        await find(page, UMEKO)
        await found.get_by_role("link").click()
        await expect(page.locator("#invoice-whose")).to_contain_text(f"{UMEKO}（{UMEKO_KANA}）")
        free_of_names(page)
        await page.locator("#amount").fill("３３，０００")
        await page.get_by_role("button", name="相談料を受け取る").click()
        await expect(page.locator("#invoice-status")).to_have_text("入金済み")
        await page.get_by_role("button", name="領収書を発行").click()
        await page.locator("#refund_amount").fill("1,000")
        await page.locator("#refund_reason").select_option("goodwill")
        await page.get_by_role("button", name="返金").click()
        await expect(page.locator("#invoice-status")).to_have_text("一部返金")
        await page.goto(f"{c.url}/counter")
        await relative.get_by_role("link", name="開く").click()
        await expect(page.locator("#invoice-whose")).to_contain_text("佐藤 次郎")
        await page.locator("input[name=method][value=card]").check()
        await page.locator("#amount").fill("33000")
        await page.get_by_role("button", name="相談料を受け取る").click()
        await expect(page.locator("#invoice-status")).to_have_text("入金済み")

        # The till: the day's net, and its three transactions in the order the money moved, two to a page here.
        await page.get_by_role("link", name="本日の売上").click()
        await expect(page.locator("#takings-net")).to_have_text("¥65,000")
        rows = page.locator("#transactions tbody tr")
        await expect(rows).to_have_count(2)
        await expect(rows.nth(0)).to_contain_text("入金")
        await expect(rows.nth(0)).to_contain_text("R2026-000001")
        await expect(rows.nth(1)).to_contain_text("返金")
        await expect(rows.nth(1)).to_contain_text("−¥1,000")
        await accessible(page, "takings-transactions")
        await page.get_by_role("link", name="次へ").click()
        await expect(rows).to_have_count(1)
        await expect(rows.nth(0)).to_contain_text("カード")
        await expect(page.locator("#takings-net")).to_have_text("¥65,000")
        await page.get_by_role("link", name="最初へ").click()
        await expect(rows).to_have_count(2)
        # Another day, typed as the desk types it; a date that is not one gets a message at the field.
        await page.locator("#date").fill("２０２６/１２/０２")
        await page.get_by_role("button", name="表示").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("売上 2026/12/02")
        await expect(page.locator("#takings-net")).to_have_text("¥0")
        await expect(page.locator("#h-transactions + .empty")).to_be_visible()
        await page.locator("#date").fill("12月")
        await page.get_by_role("button", name="表示").click()
        await expect(page.locator("#date-error")).to_have_text("日付は 2026/12/02 のように入力してください")

        # Every name the cashier saw is in intake's access log, under the cashier, case by case.
        log = await c.services["intake"].get("/audit/access-log", headers=c.as_staff("auditor"),
                                             params={"case_id": umeko_id})
        actions = {(entry["actor_id"], entry["action"]) for entry in log.json()["entries"]}
        assert ("cash-1", "read_case_names_for_counter") in actions
        searched = await c.services["intake"].get("/audit/access-log", headers=c.as_staff("auditor"),
                                                  params={"case_id": "*"})
        assert ("cash-1", "search_cases_by_name") in {
            (entry["actor_id"], entry["action"]) for entry in searched.json()["entries"]}

        # The counter is the cashier's: a coordinator is refused its page and its search.
        desk = await c.page()
        await c.sign_in(desk, "coord-1", "coordinator")
        refused = await desk.goto(f"{c.url}/counter")
        assert refused is not None
        assert refused.status == 403
        await expect(desk.get_by_role("heading", level=1)).to_have_text("このページを開く権限がありません")
        assert not page.script_errors  # type: ignore[attr-defined]
