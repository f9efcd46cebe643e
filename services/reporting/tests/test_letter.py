"""The report letter's content, from a final report's facts, without a database (the route's own test is in
tests/e2e/test_documents.py)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import date

import pytest

from eventkit.documents import HospitalSettings
from eventkit.documents_testing import missing_text, pdf_text, unembedded_fonts
from eventkit.errors import NotFound
from reporting.domain import OpinionReport, ReportStatus
from reporting.letter import LetterFacts, render_letter
from secondopinion_contracts.codes import Mode

HOSPITAL = HospitalSettings(HOSPITAL_PHYSICIANS={"dr-sato": "佐藤 一郎"})
PERSON = {"patient_name": "山田 花子", "patient_birth_date": "1958-04-01", "attending_name": "鈴木 次郎",
          "attending_institution": "みなとクリニック", "attending_postal_code": "105-0011",
          "attending_address": "東京都港区芝公園4-2-8", "case_number": "SO-2026-00123"}
FINAL = OpinionReport(status=ReportStatus.FINALIZED, report_id=uuid.UUID(int=5), draft_number=2,
                      physician_id="dr-sato", consultation_mode=Mode.IN_PERSON, consulted_on=date(2026, 12, 8),
                      finalized_on=date(2026, 12, 9))
OPINION = "手術は妥当と考えます。\nカテーテル治療も選択肢です。"


def test_the_letter_is_addressed_to_the_attending_physician_and_holds_the_final_opinion() -> None:
    pdf = render_letter(LetterFacts.of(uuid.uuid4(), FINAL, "cardiology", OPINION), PERSON, HOSPITAL)
    expected = [
        "セカンドオピニオン報告書",
        "Second-opinion report",
        "〒105-0011",
        "東京都港区芝公園4-2-8",
        "みなとクリニック",
        "鈴木 次郎 先生",
        "山田 花子 様",
        "受付番号 SO-2026-00123",
        "1958年4月1日",
        "2026年12月8日（火）",
        "対面",
        "循環器内科",
        "佐藤 一郎",
        "手術は妥当と考えます。",
        "カテーテル治療も選択肢です。",
        "報告日 2026年12月9日（水）",
        HOSPITAL.name,
        HOSPITAL.address,
    ]
    assert missing_text(pdf, *expected) == []
    assert unembedded_fonts(pdf) == []


def test_a_long_opinion_flows_onto_further_pages_each_numbered() -> None:
    long_opinion = "\n".join(f"{n}. 検査所見と治療方針についての意見を述べます。" * 8 for n in range(1, 60))
    pdf = render_letter(LetterFacts.of(uuid.uuid4(), FINAL, "cardiology", long_opinion), PERSON, HOSPITAL)
    assert missing_text(pdf, "59. 検査所見", "セカンドオピニオン報告書 3ページ") == []


def test_after_erasure_names_and_the_opinion_print_masked() -> None:
    masked = {**dict.fromkeys(PERSON, "***"), "case_number": "SO-2026-00123"}
    pdf = render_letter(LetterFacts.of(uuid.uuid4(), FINAL, "cardiology", None), masked, HOSPITAL)
    text = pdf_text(pdf)
    assert "*** 様" in text
    assert "*** 先生" in text
    assert "山田" not in text
    assert "手術" not in text


@pytest.mark.parametrize(("status", "reason"), [(ReportStatus.NOT_STARTED, "no report has been drafted"),
                                                (ReportStatus.DRAFTED, "is a draft")])
def test_no_letter_before_the_report_is_final(status: ReportStatus, reason: str) -> None:
    with pytest.raises(NotFound, match=reason):
        LetterFacts.of(uuid.uuid4(), replace(FINAL, status=status), "cardiology", OPINION)
