"""The shared document layout: Japanese text with the font embedded as a subset, the same bytes for the same
document, and a clear error when the font is missing."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from eventkit.documents import (
    Document,
    Fields,
    FontMissing,
    Grid,
    Heading,
    HospitalSettings,
    Lines,
    ja_date,
    render,
    sha256_of,
    yen,
)
from eventkit.documents_testing import pdf_text, unembedded_fonts

DOCUMENT = Document(
    title="予約票", title_english="Appointment slip", reference="appointment-slip-1", issued_on=date(2026, 12, 1),
    addressee=["〒980-8574", "宮城県仙台市青葉区星陵町1-1", "山田 花子 様"], stamp="再発行",
    numbers=[("No.", "R2026-000001")],
    blocks=[Heading("ご予約の内容", "Your appointment"), Fields([("日時\nDate", "2026年12月8日（火） 10:00～11:00")]),
            Lines(["紹介状と検査資料をお持ちください。"], boxed=True),
            Grid(["品目", "金額"], [["相談料", yen(33_000)]], widths=[120, 50], right=[1])])


def test_the_japanese_text_is_there_in_an_embedded_subset_font() -> None:
    pdf = render(DOCUMENT, HospitalSettings())
    text = pdf_text(pdf)
    for expected in ("予約票", "Appointment slip", "山田 花子 様", "33,000円", "再発行", "発行日 2026年12月1日（火）",
                     "セカンドオピニオン大学病院（開発用）"):
        assert expected in text
    assert unembedded_fonts(pdf) == []


def test_the_same_document_is_the_same_bytes() -> None:
    hospital = HospitalSettings()
    assert sha256_of(render(DOCUMENT, hospital)) == sha256_of(render(DOCUMENT, hospital))
    assert render(DOCUMENT, hospital) != render(Document(**{**DOCUMENT.__dict__, "stamp": None}), hospital)


def test_a_missing_font_says_where_it_was_looked_for_before_anything_is_printed(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"/nowhere/font\.ttf is missing: install fonts-ipaexfont-gothic"):
        HospitalSettings(DOCUMENT_FONT_PATH="/nowhere/font.ttf")
    font = tmp_path / "font.ttf"
    font.write_bytes(Path(HospitalSettings().font_path).read_bytes())
    hospital = HospitalSettings(DOCUMENT_FONT_PATH=str(font))
    font.unlink()
    with pytest.raises(FontMissing, match="DOCUMENT_FONT_PATH"):
        render(DOCUMENT, hospital)


def test_production_needs_the_hospitals_own_identity() -> None:
    with pytest.raises(ValueError, match="HOSPITAL_NAME"):
        HospitalSettings(APP_PROFILE="production")
    configured = HospitalSettings(APP_PROFILE="production", HOSPITAL_NAME="ある大学病院", HOSPITAL_ADDRESS="ある市1-1",
                                  HOSPITAL_DESK_PHONE="099-000-1111")
    assert configured.issuer_lines[-1] == "TEL 099-000-1111"


def test_dates_and_amounts_are_printed_the_japanese_way() -> None:
    assert ja_date(date(2026, 12, 8)) == "2026年12月8日（火）"
    assert yen(44_000) == "44,000円"
