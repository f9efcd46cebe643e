"""The console's pages beyond the main flow, in a real browser: a refusal decided by the facts shown at once,
another role's page refused, the English switch, the auditor's log, and a flow done with the keyboard alone."""

from __future__ import annotations

from datetime import time

from playwright.async_api import expect

from desk.testing import PATIENT_FAMILY, Hands, accessible, console, tab_to


async def test_refusals_roles_language_and_the_access_log(rabbitmq_url: str) -> None:
    async with console(rabbitmq_url) as c:
        page = await c.page()
        await page.goto(f"{c.url}/sign-in")
        await accessible(page, "sign-in")
        await c.sign_in(page, "coord-1", "coordinator")

        # A family member asks without the patient's consent: the reasons are on screen at once.
        await page.get_by_role("link", name="新規受付（電話）").click()
        await page.get_by_label("続柄").select_option("family")
        await page.locator("#requester_name").fill("山田 一郎")
        await page.locator("#patient_name").fill(PATIENT_FAMILY)
        await page.locator("#patient_birth_date").fill("1950/1/5")
        await page.get_by_label("診療科").select_option(label="脳神経内科")
        await page.get_by_label("相談内容").fill("治療方針について")
        await page.locator("#attending_name").fill("鈴木 次郎")
        await page.locator("#attending_institution").fill("市民病院")
        await page.get_by_label("主治医が同意している").check()
        await page.get_by_role("button", name="受け付ける").click()
        await expect(page.locator("#declined")).to_contain_text("患者本人の同意がありません")
        await accessible(page, "new-case-declined")
        await page.locator("#declined a").click()
        await expect(page.locator("#decline-reasons")).to_contain_text("患者本人の同意がありません")
        await expect(page.locator("#status")).to_have_text("お断り")
        await page.get_by_role("link", name="新規受付（電話）").click()

        # Bad input gets a message at the field and nothing is sent.
        await page.locator("#patient_name").fill(PATIENT_FAMILY)
        await page.locator("#patient_birth_date").fill("昭和25年")
        await page.get_by_role("button", name="受け付ける").click()
        await expect(page.locator("#patient_birth_date-error")).to_contain_text("2026/12/02 のように")
        await expect(page.locator("#patient_birth_date")).to_have_attribute("aria-invalid", "true")

        await page.get_by_role("link", name="案件一覧").click()
        await expect(page.locator("tbody tr")).to_have_count(1)
        await accessible(page, "case-list")

        await page.get_by_role("button", name="English").click()
        await expect(page.get_by_role("heading", name="Case list")).to_be_visible()
        await expect(page.locator("tbody tr")).to_contain_text("Declined")
        await page.get_by_role("button", name="日本語").click()
        await expect(page.get_by_role("heading", name="案件一覧")).to_be_visible()

        cashier = await c.page()
        await c.sign_in(cashier, "cash-1", "cashier")
        response = await cashier.goto(f"{c.url}/queue")
        assert response is not None
        assert response.status == 403
        await expect(cashier.get_by_role("heading")).to_have_text("このページを開く権限がありません")
        await expect(cashier.get_by_role("link", name="業務一覧")).to_have_count(0)
        await accessible(cashier, "forbidden")

        auditor = await c.page()
        await c.sign_in(auditor, "audit-1", "auditor")
        await expect(auditor.locator('[data-service="intake"] .badge')).to_have_text("改ざんなし")
        read = auditor.locator('tbody tr:has(td[data-action="read_case_personal_data"])').first
        await expect(read).to_contain_text("患者情報の閲覧")
        await expect(read).to_contain_text("受付 花子")  # by name, the staff id in its title
        await expect(read.locator(".staff")).to_have_attribute("title", "職員ID: coord-1")
        listed = auditor.locator('tbody tr:has(td[data-action^="list_cases"])').first
        await expect(listed).to_contain_text("案件一覧の表示（")  # a listing in words, with what was asked
        await accessible(auditor, "audit")

        # The four logs as one, three entries to a page, newest first: page by page to the first entry of all.
        logged = set()
        for service in ("intake", "scheduling", "billing", "reporting"):
            answer = await c.services[service].get("/audit/access-log", headers=c.as_staff("auditor"),
                                                   params={"limit": 1000})
            logged |= {f"{service}:{entry['id']}" for entry in answer.json()["entries"]}
        await auditor.goto(f"{c.url}/audit?limit=3")
        paged: list[str] = []
        times: list[str] = []
        while True:
            rows = auditor.locator("tbody tr")
            await expect(rows.first).to_be_visible()
            paged += [str(await row.get_attribute("data-entry")) for row in await rows.all()]
            times += [await cell.inner_text() for cell in await auditor.locator("tbody tr td:first-child").all()]
            following = auditor.locator(".pager").get_by_role("link", name="次へ")
            if not await following.count():
                break
            await following.click()
            await expect(auditor.locator(".pager").get_by_role("link", name="最初へ")).to_be_visible()
        assert len(paged) == len(set(paged)), "no entry twice"
        assert logged <= set(paged), "no entry lost"
        assert times == sorted(times, reverse=True), "newest first across the pages"


async def test_a_case_is_taken_and_its_documents_recorded_with_the_keyboard_alone(rabbitmq_url: str) -> None:
    async with console(rabbitmq_url) as c:
        page = await c.page()
        await page.goto(f"{c.url}/sign-in")
        await tab_to(page.locator('input[name="roles"][value="coordinator"]'))
        await page.keyboard.press("Space")
        await tab_to(page.locator("button.primary"))
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("heading", name="業務一覧")).to_be_visible()

        await tab_to(page.locator('a[href="/cases/new"]'))
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("heading", name="新規受付（電話）")).to_be_visible()
        # A family member without the patient's consent: refused on screen, by the keyboard alone too.
        keys = Hands(keyboard=True)
        await keys.select(page.locator("#relationship"), "family")
        await keys.fill(page.locator("#requester_name"), "山田 一郎")
        await keys.fill(page.locator("#patient_name"), PATIENT_FAMILY)
        await keys.fill(page.locator("#patient_birth_date"), "１９５０/１/５")
        await keys.select(page.locator("#department"), label="脳神経内科")
        await keys.fill(page.locator("#question"), "治療方針について")
        await keys.fill(page.locator("#attending_name"), "鈴木 次郎")
        await keys.fill(page.locator("#attending_institution"), "市民病院")
        await keys.check(page.locator('input[name="attending_consents"]'))
        await keys.click(page.locator("form.card button.primary"))
        await expect(page.locator("#declined")).to_contain_text("患者本人の同意がありません")
        await keys.click(page.locator('a[href="/cases/new"]'))
        await expect(page.get_by_role("heading", name="新規受付（電話）")).to_be_visible()
        for selector, typed in (("#patient_name", PATIENT_FAMILY), ("#patient_birth_date", "1970/02/03"),
                                ("#question", "セカンドオピニオンを希望"), ("#attending_name", "田中 医師"),
                                ("#attending_institution", "中央病院")):
            await tab_to(page.locator(selector))
            await page.keyboard.type(typed)
        await tab_to(page.locator("#department"))
        await page.keyboard.press("ArrowDown")  # the first department of the list: 循環器内科
        await tab_to(page.locator('input[name="attending_consents"]'))
        await page.keyboard.press("Space")
        await tab_to(page.locator("form.card button.primary"))
        await page.keyboard.press("Enter")
        await expect(page.locator(".flash")).to_contain_text("記録しました")
        await expect(page.locator("#status")).to_have_text("受付")

        await tab_to(page.locator("#kind"))
        await tab_to(page.locator("#received_on"))
        await tab_to(page.locator("#documents button"))
        await page.keyboard.press("Enter")
        await expect(page.locator("#documents .ok").first).to_contain_text("申込書")
        await tab_to(page.locator("button.link >> text=サインアウト"))
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("heading", name="サインイン")).to_be_visible()


async def test_the_board_and_the_work_queue_update_themselves_when_an_event_arrives(rabbitmq_url: str) -> None:
    async with console(rabbitmq_url) as c:
        page = await c.page()
        await c.sign_in(page, "coord-1", "coordinator")
        await page.get_by_role("link", name="案件ボード").click()
        await expect(page.locator('[data-column="submitted"] li')).to_have_count(0)
        submitted = await c.services["intake"].post("/cases", headers=c.as_staff("coordinator"), json={
            "requester": {"relationship": "self", "name": "Live Test"},
            "patient": {"name": "Live Test", "birth_date": "1970-01-01"}, "mode": "online",
            "department": "cardiology", "question": "q",
            "attending_physician": {"name": "Dr", "institution": "Clinic", "consents": True},
            "wants_treatment_here": False, "complaint_or_litigation": False})
        assert submitted.status_code == 201, submitted.text
        case_id = submitted.json()["case_id"]
        # No reload by the test: the page notices reporting's new revision and shows the card.
        await expect(page.locator(f'[data-column="submitted"] [data-case-id="{case_id}"]')).to_be_visible(
            timeout=15_000)
        await page.get_by_role("link", name="業務一覧").click()
        await expect(page.locator(f'#queue-documents [data-case-id="{case_id}"]')).to_be_visible()

        # The case page too: the documents come in and the physician accepts elsewhere; scheduling hears of it on
        # the bus, and the page shows each step without a reload by the test.
        await page.locator(f'#queue-documents [data-case-id="{case_id}"] a').first.click()
        await expect(page.locator("#status")).to_have_text("受付")
        for kind in ("application_form", "referral_letter", "test_results"):
            received = await c.services["intake"].post(f"/cases/{case_id}/documents", headers=c.as_staff(
                "coordinator"), json={"kind": kind, "received_on": "2026-12-02"})
            assert received.status_code == 201, received.text
        await expect(page.locator("#status")).to_have_text("審査中", timeout=15_000)
        # Someone at a form's control keeps their place: the page waits until they leave it.
        await page.locator("#withdraw-reason").focus()
        await page.evaluate("window.stillHere = true")
        accepted = await c.services["intake"].post(f"/cases/{case_id}/screening", json={"decision": "accept"},
                                                   headers=c.as_staff("physician", subject="dr-sato"))
        assert accepted.status_code == 200, accepted.text
        await page.wait_for_timeout(2_000)  # several of the page's live checks (every 0.3 s here)
        assert await page.evaluate("window.stillHere === true"), "the page reloaded under a focused control"
        await expect(page.locator("#status")).to_have_text("審査中")
        await page.evaluate("document.activeElement.blur()")
        await expect(page.locator("#status")).to_have_text("受諾", timeout=15_000)
        await expect(page.locator("#schedule .badge").first).to_have_text("日程提示待ち", timeout=15_000)
        assert not page.script_errors  # type: ignore[attr-defined]


async def test_dates_are_moved_cancelled_and_a_no_show_recorded_and_a_physician_declines_with_reasons(
        rabbitmq_url: str) -> None:
    async with console(rabbitmq_url) as c:
        coordinator, physician = c.as_staff("coordinator", subject="coord-1"), c.as_staff("physician",
                                                                                          subject="dr-sato")
        intake, scheduling = c.services["intake"], c.services["scheduling"]

        async def accepted_case() -> str:
            case = await intake.post("/cases", headers=coordinator, json={
                "requester": {"relationship": "self", "name": "日程 試験"},
                "patient": {"name": "日程 試験", "birth_date": "1970-01-01"}, "mode": "in_person",
                "department": "cardiology", "question": "q",
                "attending_physician": {"name": "Dr", "institution": "Clinic", "consents": True},
                "wants_treatment_here": False, "complaint_or_litigation": False})
            case_id: str = case.json()["case_id"]
            for kind in ("application_form", "referral_letter", "test_results"):
                await intake.post(f"/cases/{case_id}/documents", headers=coordinator,
                                  json={"kind": kind, "received_on": "2026-12-02"})
            return case_id

        moved, declined = await accepted_case(), await accepted_case()
        await intake.post(f"/cases/{moved}/screening", headers=physician,
                          json={"decision": "accept", "physician": "dr-sato"})
        opened = await scheduling.post("/departments/cardiology/slots", headers=coordinator, json={
            "physician_id": "dr-sato", "from": "2026-12-03", "to": "2026-12-04", "start_times": ["10:00"],
            "duration_minutes": 60})
        assert opened.status_code == 201, opened.text

        doctor = await c.page()
        await c.sign_in(doctor, "dr-sato", "physician")
        await doctor.goto(f"{c.url}/cases/{declined}")
        await doctor.get_by_label("当院での治療を希望されています").check()
        await doctor.get_by_role("button", name="お断り").click()
        await expect(doctor.locator("#status")).to_have_text("お断り")
        await expect(doctor.locator("#decline-reasons")).to_contain_text("当院での治療を希望されています")

        desk = await c.page()
        await c.sign_in(desk, "coord-1", "coordinator")
        await desk.goto(f"{c.url}/cases/{moved}")
        await desk.locator('#schedule input[name="slot_ids"]').first.check()
        await desk.get_by_role("button", name="候補日を提示").click()
        await desk.get_by_role("button", name="患者の選択を記録").click()
        await expect(desk.locator("#appointment-start")).to_have_text("2026/12/03 10:00")

        await desk.locator("summary", has_text="日程変更").click()
        await desk.locator("#reschedule-slot").select_option(index=0)
        await desk.locator("#reschedule-reason").select_option("patient_request")
        await desk.get_by_role("button", name="日程変更").click()
        await expect(desk.locator("#appointment-start")).to_have_text("2026/12/04 10:00")

        await desk.locator("summary", has_text="予約取消").click()
        await desk.locator("#cancel-reason").select_option("patient_unwell")
        await desk.locator("#cancel-by").select_option("patient")
        await desk.get_by_role("button", name="予約取消").click()
        await expect(desk.locator("#schedule h3 .badge")).to_have_text("取消")
        await expect(desk.locator("#schedule h2 .badge")).to_have_text("予約取消")

        # Dates again, and the patient does not come.
        await desk.locator('#schedule input[name="slot_ids"]').first.check()
        await desk.get_by_role("button", name="候補日を提示").click()
        await desk.get_by_role("button", name="患者の選択を記録").click()
        await desk.get_by_role("button", name="来院なし").click()
        await expect(desk.locator("#no-show-refusal")).to_contain_text("予約時刻を過ぎてから")
        c.clock.set_tokyo("2026-12-03", time(11, 30))
        await desk.get_by_role("button", name="来院なし").click()
        await expect(desk.locator("#schedule h3 .badge")).to_have_text("来院なし")
        await accessible(desk)


async def test_a_caller_is_found_by_name_in_kana_or_by_case_number_and_the_numbers_are_shown(
        rabbitmq_url: str) -> None:
    async with console(rabbitmq_url) as c:
        coordinator = c.as_staff("coordinator", subject="coord-1")
        numbers = []
        for birth_date in ("1968-04-01", "1975-01-01"):
            case = await c.services["intake"].post("/cases", headers=coordinator, json={
                "requester": {"relationship": "self", "name": "山田 太郎", "phone": "03-1234-5678"},
                "patient": {"name": "山田 太郎", "name_kana": "ヤマダ タロウ", "birth_date": birth_date},
                "mode": "online", "department": "cardiology", "question": "q",
                "attending_physician": {"name": "Dr", "institution": "Clinic", "consents": True},
                "wants_treatment_here": False, "complaint_or_litigation": False})
            assert case.status_code == 201, case.text
            numbers.append((case.json()["case_id"], case.json()["case_number"]))
        page = await c.page()
        await c.sign_in(page, "coord-1", "coordinator")
        await page.goto(f"{c.url}/find")
        await page.get_by_label("患者氏名（漢字・フリガナ）").fill("やまだ たろう")
        await page.get_by_role("button", name="検索").click()
        for case_id, number in numbers:  # two callers of one name: both listed, with their numbers
            await expect(page.locator(f'#found [data-case-id="{case_id}"]')).to_contain_text(number)
        await page.get_by_label("生年月日").fill("1975/1/1")
        await page.get_by_role("button", name="検索").click()
        await expect(page.locator("#case-number")).to_have_text(numbers[1][1])
        await page.goto(f"{c.url}/find")
        await page.get_by_label("受付番号または案件ID").fill(numbers[0][1].lower())
        await page.get_by_role("button", name="検索").click()
        await expect(page.locator("#case-number")).to_have_text(numbers[0][1])
        await page.goto(f"{c.url}/cases")
        await expect(page.locator(f'[data-case-id="{numbers[0][0]}"]')).to_contain_text(numbers[0][1])
