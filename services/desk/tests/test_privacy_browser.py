"""The privacy officers' pages in a real browser, against the four services: one officer requests the erasure of a
case's personal data (refused within the retention period, then pending), cannot approve it themselves, a second
officer approves it and the case reads as erased; the coordinator's search by the patient's name no longer finds
it, and a coordinator cannot open the officers' pages. On the way, staff are shown by their names."""

from __future__ import annotations

import asyncio
from datetime import time

from playwright.async_api import Page, expect

from desk.testing import Console, accepted_case, accessible, console, phoned_case

PATIENT = "山田 梅子"
CASE = phoned_case(PATIENT)


async def find_by_name(page: Page, c: Console) -> None:
    await page.goto(f"{c.url}/find")
    await page.locator("#name").fill(PATIENT)
    await page.get_by_role("button", name="検索").click()


async def step(page: Page, button: str, confirm: str) -> None:
    """An erasure step: its button, then the confirmation that says it cannot be undone."""
    await page.get_by_role("button", name=button).click()
    await expect(page.locator("#confirm")).to_contain_text("この操作は取り消せません")
    await page.get_by_role("button", name=confirm).click()


async def test_two_officers_erase_a_case_and_staff_are_shown_by_name(rabbitmq_url: str) -> None:
    async with console(rabbitmq_url) as c:
        case_id, number = await accepted_case(c, CASE)
        physician = await c.page()
        await c.sign_in(physician, "dr-sato", "physician")  # the desk learns the name dr-sato goes by

        # The coordinator's case page names the physician who accepted the case, the id in its title.
        desk = await c.page()
        await c.sign_in(desk, "coord-1", "coordinator")
        accepted = desk.locator('#timeline tr[data-event="CaseAccepted"]')
        for _ in range(100):  # reporting's timeline learns of the acceptance through the bus
            await desk.goto(f"{c.url}/cases/{case_id}")
            if await accepted.count():
                break
            await asyncio.sleep(0.2)
        await expect(accepted).to_contain_text("佐藤 医師")
        await expect(accepted.locator(".staff")).to_have_attribute("title", "職員ID: dr-sato")
        assert "dr-sato" not in await accepted.inner_text()
        await find_by_name(desk, c)
        await expect(desk.locator("#case-number")).to_have_text(number)  # one case: its page

        # A coordinator does not open the officers' pages.
        for path in ("/privacy", f"/privacy/cases/{case_id}"):
            refused = await desk.goto(f"{c.url}{path}")
            assert refused is not None
            assert refused.status == 403, path
        await expect(desk.get_by_role("link", name="個人情報の消去")).to_have_count(0)

        # The first officer opens the case by its number and asks too early: intake refuses, beside the button.
        first = await c.page()
        await c.sign_in(first, "privacy-1", "privacy_officer")
        await expect(first.get_by_role("heading", name="個人情報の消去", exact=True)).to_be_visible()
        await first.locator("#case_number").fill(number)
        await first.get_by_role("button", name="開く").click()
        await expect(first.locator("#case-number")).to_have_text(number)
        assert case_id in first.url
        assert number not in first.url
        await expect(first.locator("#status")).to_have_text("受諾")
        assert PATIENT not in await first.content()
        await step(first, "消去を申請する", "申請を確定する")
        await expect(first.locator("#request-refusal")).to_contain_text("保存期間中のため消去できません")

        # Past the retention period: the request waits for a second officer, who is not the first.
        c.clock.set_tokyo("2032-12-03", time(10, 0))
        await step(first, "消去を申請する", "申請を確定する")
        await expect(first.locator(".flash")).to_contain_text("消去を申請しました")
        await expect(first.locator("#erasure-state")).to_have_text("承認待ち")
        await expect(first.locator("#erasure")).to_contain_text("ご自身の申請です")
        await step(first, "消去を承認する", "承認して消去する")
        await expect(first.locator("#approval-refusal")).to_contain_text("ご自身の申請は承認できません")
        await accessible(first, "privacy-own-request")
        await expect(first.locator("#erasure-state")).to_have_text("承認待ち")

        # The second officer finds it waiting on their home page, the requester by name, and approves it.
        second = await c.page()
        await c.sign_in(second, "privacy-2", "privacy_officer")
        waiting = second.locator(f'#waiting tr[data-case-id="{case_id}"]')
        await expect(waiting).to_contain_text(number)
        await expect(waiting).to_contain_text("個人情報 三郎")
        await accessible(second, "privacy-home")
        await waiting.get_by_role("link").click()
        await expect(second.locator("#requested-by")).to_contain_text("個人情報 三郎")
        await second.get_by_role("button", name="消去を承認する").click()
        await expect(second.locator("#confirm")).to_contain_text("二度と読めなくなります")
        await accessible(second, "privacy-confirm")
        await second.get_by_role("button", name="承認して消去する").click()
        await expect(second.locator(".flash")).to_contain_text("個人情報を消去しました")
        await expect(second.locator("#erasure-state")).to_have_text("消去済み")
        await expect(second.locator("#erased-on")).to_have_text("2032/12/03")
        await expect(second.get_by_role("button", name="消去を承認する")).to_have_count(0)
        await accessible(second, "privacy-erased")
        await second.goto(f"{c.url}/privacy")
        await expect(second.locator("#waiting")).to_have_count(0)

        # The coordinator's search by the patient's name no longer finds the case.
        await find_by_name(desk, c)
        await expect(desk.get_by_role("heading", name="該当する案件")).to_be_visible()
        await expect(desk.locator("#found")).to_have_count(0)
        await expect(desk.locator(".empty")).to_have_text("該当なし")
