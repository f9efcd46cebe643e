"""The appointment slip's content, from an appointment's facts, without a database (the route's own test is in
tests/e2e/test_documents.py, through intake, scheduling and the bus)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

import pytest

from eventkit.clock import TOKYO
from eventkit.documents import HospitalSettings
from eventkit.documents_testing import missing_text, pdf_text, unembedded_fonts
from eventkit.errors import NotFound
from scheduling.slip import SlipFacts, render_slip

HOSPITAL = HospitalSettings(HOSPITAL_PHYSICIANS={"dr-sato": "佐藤 一郎"})
PERSON = {"patient_name": "山田 花子", "patient_postal_code": "980-8574",
          "patient_address": "宮城県仙台市青葉区星陵町1-1", "case_number": "SO-2026-00123"}


def view(**changes: Any) -> dict[str, Any]:
    return {"appointment_id": uuid.UUID(int=7), "case_id": uuid.UUID("3f2a0c1e-0000-4000-8000-000000000001"),
            "mode": "in_person", "status": "booked", "department": "cardiology", "physician_id": "dr-sato",
            "start": datetime(2026, 12, 8, 10, 0, tzinfo=TOKYO), "end": datetime(2026, 12, 8, 11, 0, tzinfo=TOKYO),
            "slip_issued_on": date(2026, 12, 1), "reschedules": [], **changes}


def test_the_slip_says_when_where_what_to_bring_and_how_to_change() -> None:
    pdf = render_slip(SlipFacts.from_view(view()), PERSON, HOSPITAL)
    expected = [
        "予約票",
        "Appointment slip",
        "〒980-8574",
        "宮城県仙台市青葉区星陵町1-1",
        "山田 花子 様",
        "受付番号 SO-2026-00123",
        "2026年12月8日（火） 10:00～11:00",
        "循環器内科",
        "佐藤 一郎",
        "新患受付",
        "会計窓口",
        "診療情報提供書（紹介状）と検査資料（CD-R 可）（まだ届いていません",
        "33,000円（税込）",
        "ご相談の前にお支払いいただきます",
        HOSPITAL.desk_phone,
        "月曜～金曜日（土・日・祝日・年末年始を除く）8:30～17:00",
        "一般外来の予約はできません",
    ]
    assert missing_text(pdf, *expected) == []
    assert "変更後" not in pdf_text(pdf)
    assert "3f2a0c1e" not in pdf_text(pdf).lower(), "the case number, not the case id"
    assert unembedded_fonts(pdf) == []


def test_after_a_reschedule_the_slip_says_it_replaces_the_earlier_one() -> None:
    pdf = render_slip(SlipFacts.from_view(view(reschedules=[{"reason": "patient_request"}])), PERSON, HOSPITAL)
    assert missing_text(pdf, "変更後の予約票", "以前お送りした予約票に代わるものです") == []


def test_materials_already_posted_are_not_asked_for_again() -> None:
    posted = {**PERSON, "received_documents": ["application_form", "referral_letter", "test_results"]}
    pdf = render_slip(SlipFacts.from_view(view()), posted, HOSPITAL)
    assert missing_text(pdf, "紹介状）と検査資料は郵送で受領済みです") == []
    only_letter = {**PERSON, "received_documents": ["referral_letter"]}
    pdf = render_slip(SlipFacts.from_view(view()), only_letter, HOSPITAL)
    assert missing_text(pdf, "・検査資料（CD-R 可）（まだ届いていません") == []


def test_erased_personal_data_prints_masked() -> None:
    masked = {**dict.fromkeys(PERSON, "***"), "case_number": "SO-2026-00123"}
    text = pdf_text(render_slip(SlipFacts.from_view(view()), masked, HOSPITAL))
    assert "SO-2026-00123" in text, "the case number is not personal data"
    assert "*** 様" in text
    assert "山田" not in text


@pytest.mark.parametrize(("changes", "reason"), [
    ({"mode": "online"}, "is online: it has no appointment slip"),
    ({"status": "cancelled"}, "was cancelled"),
    ({"slip_issued_on": None}, "no appointment slip has been issued"),
])
def test_no_slip_to_print_says_why(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(NotFound, match=reason):
        SlipFacts.from_view(view(**changes))


def test_a_case_without_a_number_prints_its_id_prefix() -> None:
    unnumbered = {name: value for name, value in PERSON.items() if name != "case_number"}
    assert missing_text(render_slip(SlipFacts.from_view(view()), unnumbered, HOSPITAL), "受付番号 3F2A0C1E") == []
