"""The documents the desk hands over and posts, printed through the services' own routes on the real broker and
databases: the appointment slip (scheduling), the report letter (reporting), the receipt and the refund note
(billing). Each is read back as a reader would, with poppler's pdftotext and pdffonts.

Set DOCUMENTS_PNG_DIR (`make documents`) to keep a page of each as PNG, as docs/documents/ shows them."""

from __future__ import annotations

import hashlib
import os
import re
from datetime import time
from pathlib import Path

import httpx

from eventkit.documents_testing import missing_text, pdf_text, save_page_png, unembedded_fonts
from eventkit.testing import bearer, erase_personal_data
from tests.e2e.hospital import CONSULTATION_DAY, HOSPITAL, STAFF, Hospital, expect, hospital

PATIENT = "山田 花子"
PAYER = f"{PATIENT} (daughter)"
REGISTRATION_NUMBER = "T1234567890123"  # billing's test configuration


def pdf(response: httpx.Response, tmp_path: Path, name: str) -> bytes:
    """A printed document's bytes, checked as any print must be: a PDF named by ids only, fonts embedded."""
    assert response.status_code == 200, f"{response.request.url}: {response.status_code} {response.text}"
    assert response.headers["content-type"] == "application/pdf"
    disposition = response.headers["content-disposition"]
    assert re.fullmatch(r'inline; filename="[a-z-]+-[A-Za-z0-9-]+\.pdf"', disposition), disposition
    assert "山田" not in disposition
    assert response.headers["x-document-sha256"] == hashlib.sha256(response.content).hexdigest()
    assert unembedded_fonts(response.content) == []
    folder = Path(os.environ.get("DOCUMENTS_PNG_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    assert save_page_png(response.content, folder / f"{name}.png").stat().st_size > 10_000
    return response.content


def refused(response: httpx.Response, status: int, reason: str) -> None:
    assert response.status_code == status, f"{response.request.url}: {response.status_code} {response.text}"
    assert reason in response.json()["detail"], response.text


async def other_open_slot(h: Hospital, appointment: dict[str, str]) -> str:
    slots = expect(await h.scheduling.get("/departments/cardiology/slots", headers=STAFF["coordinator"], params={
        "from": CONSULTATION_DAY.isoformat(), "to": CONSULTATION_DAY.isoformat(), "status": "open"}), 200)["slots"]
    other: str = next(slot["slot_id"] for slot in slots if slot["slot_id"] != appointment["slot_id"])
    return other


async def test_an_in_person_case_prints_its_slip_receipt_refund_and_report_and_masks_them_after_erasure(
        rabbitmq_url: str, tmp_path: Path) -> None:
    coordinator, physician, cashier = STAFF["coordinator"], STAFF["physician"], STAFF["cashier"]
    async with hospital(rabbitmq_url) as h:
        case_id = await h.submit_and_accept("in_person", patient_name=PATIENT)
        appointment = await h.book(case_id)
        appointment_id = appointment["appointment_id"]
        slip_url = f"/appointments/{appointment_id}/slip.pdf"
        number = expect(await h.intake.get(f"/cases/{case_id}", headers=coordinator), 200)["case_number"]
        assert re.fullmatch(r"SO-\d{4}-\d{5}", number), number

        # The appointment slip, posted to the patient.
        slip = pdf(await h.scheduling.get(slip_url, headers=coordinator), tmp_path, "appointment-slip-first")
        assert missing_text(slip, "予約票", "Appointment slip", "〒980-0811", "宮城県仙台市青葉区一番町1-2-3",
                            f"{PATIENT} 様", f"受付番号 {number}", "2026年12月8日（火） 10:00～11:00", "循環器内科",
                            "佐藤 一郎",
                            "新患受付", "会計窓口", "紹介状）と検査資料は郵送で受領済みです", "33,000円（税込）",
                            HOSPITAL.desk_phone, "8:30～17:00", "一般外来の予約はできません") == []
        assert case_id not in pdf_text(slip), "the case number, not the case id"
        assert (await h.scheduling.get(slip_url, headers=coordinator)).content == slip, "the same slip twice"
        for role in ("physician", "cashier", "auditor"):
            assert (await h.scheduling.get(slip_url, headers=bearer(role))).status_code == 403, role
        refused(await h.scheduling.get(f"/appointments/{case_id}/slip.pdf", headers=coordinator), 404,
                "no appointment")

        # Rescheduled: a new slip, marked as replacing the first.
        expect(await h.scheduling.post(f"/appointments/{appointment_id}/reschedule", headers=coordinator, json={
            "slot_id": await other_open_slot(h, appointment), "reason": "patient_request"}), 200)
        replacement = pdf(await h.scheduling.get(slip_url, headers=coordinator), tmp_path, "appointment-slip")
        assert missing_text(replacement, "変更後の予約票", "以前お送りした予約票に代わるものです",
                            "2026年12月8日（火） 14:00～15:00") == []

        # The receipt: not before it is issued, then the original, then copies marked 再発行.
        invoice_id = (await h.invoice_of(case_id))["invoice_id"]
        receipt_url = f"/invoices/{invoice_id}/receipt.pdf"
        refused(await h.billing.get(receipt_url, headers=cashier), 404, "nothing has been paid")
        h.clock.set_tokyo(CONSULTATION_DAY, time(13, 30))
        expect(await h.billing.post(f"/invoices/{invoice_id}/payments", headers=cashier,
                                    json={"method": "cash", "amount": 33_000}), 201)
        refused(await h.billing.get(receipt_url, headers=cashier), 404, "no receipt has been issued")
        expect(await h.billing.post(f"/invoices/{invoice_id}/receipt", headers=cashier), 201)
        original = pdf(await h.billing.get(receipt_url, headers=cashier), tmp_path, "receipt-original")
        assert missing_text(original, "領収書", f"{PAYER} 様", "R2026-000001", REGISTRATION_NUMBER, HOSPITAL.name,
                            "2026年12月8日（火）", "33,000円（税込）", "30,000円", "3,000円", "10%対象",
                            "セカンドオピニオン外来 相談料（対面", "現金") == []
        assert "再発行" not in pdf_text(original)
        reissued = pdf(await h.billing.get(receipt_url, headers=cashier), tmp_path, "receipt")
        assert missing_text(reissued, "再発行", "R2026-000001 の再発行です", "33,000円（税込）") == []
        assert (await h.billing.get(receipt_url, headers=cashier)).content == reissued, "every reissue the same"
        for role in ("coordinator", "physician"):
            assert (await h.billing.get(receipt_url, headers=bearer(role))).status_code == 403, role
        refused(await h.billing.get(f"/invoices/{case_id}/receipt.pdf", headers=cashier), 404, "no invoice")
        [printed] = await h.fetch("billing", "SELECT copies FROM issued_documents WHERE kind = 'receipt' AND "
                                             "sha256 = $1", hashlib.sha256(original).hexdigest())
        assert printed["copies"] == 1, "the original's digest is kept, for checking a presented receipt"

        # A goodwill refund of part of the fee: the refund note.
        refund_url = f"/invoices/{invoice_id}/refund.pdf"
        refused(await h.billing.get(refund_url, headers=cashier), 404, "has been refunded")
        expect(await h.billing.post(f"/invoices/{invoice_id}/refunds", headers=cashier,
                                    json={"amount": 5_000, "reason": "goodwill"}), 201)
        refund = pdf(await h.billing.get(refund_url, headers=cashier), tmp_path, "refund-note")
        assert missing_text(refund, "返金明細書", f"{PAYER} 様", "5,000円（税込）", "454円", "R2026-000001",
                            REGISTRATION_NUMBER) == []

        # The report letter: not while it is a draft; then for the desk and the physician.
        report_url = f"/cases/{case_id}/report.pdf"
        refused(await h.reporting.get(report_url, headers=coordinator), 404, "no report has been drafted")
        h.clock.set_tokyo(CONSULTATION_DAY, time(15, 5))
        await h.complete_once_paid(appointment_id)
        await h.write_report(case_id)
        letter = pdf(await h.reporting.get(report_url, headers=coordinator), tmp_path, "opinion-report")
        assert missing_text(letter, "セカンドオピニオン報告書", "〒105-0011", "東京都港区芝公園4-2-8", "Minato Clinic",
                            "Dr. Ichiro Sato 先生", f"{PATIENT} 様", f"受付番号 {number}", "1958年4月1日",
                            "2026年12月8日（火）", "対面",
                            "循環器内科", "佐藤 一郎", "Surgery is reasonable", HOSPITAL.name, HOSPITAL.address) == []
        assert (await h.reporting.get(report_url, headers=physician)).content == letter, "the same letter twice"
        assert (await h.reporting.get(report_url, headers=cashier)).status_code == 403
        expect(await h.deliver(case_id, "handed_to_patient"), 200)
        reads = await h.fetch("intake", "SELECT actor_id, action FROM access_log WHERE case_id = $1::text"
                                        " AND action LIKE 'read_personal_data_for_%' ORDER BY id", case_id)
        assert {(row["actor_id"], row["action"]) for row in reads} == {
            ("coord-1", "read_personal_data_for_slip_via_scheduling"),
            ("cashier-3", "read_personal_data_for_receipt_via_billing"),
            ("coord-1", "read_personal_data_for_report_via_reporting"),
            ("dr-sato", "read_personal_data_for_report_via_reporting")}, "intake's access log names each reader"

        # Past the retention period the case's personal data is erased: every document prints *** instead.
        h.clock.set_tokyo(CONSULTATION_DAY.replace(year=CONSULTATION_DAY.year + 6), time(10, 0))
        expect(await erase_personal_data(h.intake, case_id), 200)
        erased = {
            "slip": await h.scheduling.get(slip_url, headers=coordinator),
            "receipt": await h.billing.get(receipt_url, headers=cashier),
            "report": await h.reporting.get(report_url, headers=coordinator),
        }
        for name, response in erased.items():
            content = pdf(response, tmp_path, f"{name}-erased")
            assert "*** 様" in pdf_text(content), name
            assert "山田" not in pdf_text(content), name
            if name != "receipt":
                assert number in pdf_text(content), f"the {name} still prints the case number (not personal data)"
        assert "Surgery" not in pdf_text(erased["report"].content)


async def test_an_online_case_has_no_slip_and_a_receipt_of_44000_yen(rabbitmq_url: str, tmp_path: Path) -> None:
    async with hospital(rabbitmq_url) as h:
        case_id = await h.submit_and_accept("online", patient_name=PATIENT)
        appointment_id = (await h.book(case_id))["appointment_id"]
        refused(await h.scheduling.get(f"/appointments/{appointment_id}/slip.pdf", headers=STAFF["coordinator"]),
                404, "online")
        expect(await h.scheduling.post(f"/appointments/{appointment_id}/online-booking", headers=STAFF["coordinator"],
                                       json={"clinics_booking_ref": "CLINICS-2026-000123"}), 200)
        h.clock.set_tokyo(CONSULTATION_DAY, time(15, 5))
        expect(await h.complete(appointment_id), 200)
        await h.wait_for(case_id, "PaymentCaptured")
        invoice_id = (await h.invoice_of(case_id))["invoice_id"]
        expect(await h.billing.post(f"/invoices/{invoice_id}/receipt", headers=STAFF["cashier"]), 201)
        receipt = pdf(await h.billing.get(f"/invoices/{invoice_id}/receipt.pdf", headers=STAFF["cashier"]), tmp_path,
                      "receipt-online")
        assert missing_text(receipt, "領収書", f"{PAYER} 様", "44,000円（税込）", "40,000円", "4,000円", "10%対象",
                            REGISTRATION_NUMBER, "オンライン", "CLINICS") == []
