"""Finding a case by what a caller says: the normalisation of case numbers, names, birth dates and phones, and the
blind index's digests (intake.search). Pure, no database."""

from __future__ import annotations

from datetime import date

import pytest

from intake.search import (
    BlindIndex,
    SearchKind,
    case_number,
    normalise_birth_date,
    normalise_case_number,
    normalise_name,
    normalise_phone,
)


def full_width(text: str) -> str:
    """ASCII letters, digits and punctuation as their full-width forms (U+FF01..U+FF5E), spaces as U+3000."""
    return "".join("\u3000" if c == " " else chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


# ヤマダ タロウ in half-width katakana (the dakuten a character of its own).
HALF_WIDTH_YAMADA_TARO = "\uff94\uff8f\uff80\uff9e \uff80\uff9b\uff73"


def test_a_case_number_is_the_year_and_five_digits() -> None:
    assert case_number(2026, 123) == "SO-2026-00123"
    assert case_number(2026, 123456) == "SO-2026-123456", "a busy year widens, never wraps"


@pytest.mark.parametrize("typed", [
    "SO-2026-00123", "so-2026-123", "SO 2026 00123", "SO2026-00123", "2026-00123",
    full_width("SO-2026-00123"), full_width("so 2026 123"), "SO\u22122026\u221200123", "SO\u30fc2026\u30fc00123",
])
def test_a_case_number_is_read_however_it_was_typed(typed: str) -> None:
    assert normalise_case_number(typed) == "SO-2026-00123"


@pytest.mark.parametrize("typed", ["SO-26-123", "XX-2026-00123", "SO-2026-00000", "SO-2026-", "山田", ""])
def test_what_is_no_case_number_is_none(typed: str) -> None:
    assert normalise_case_number(typed) is None


@pytest.mark.parametrize("typed", ["山田 太郎", "山田\u3000太郎", " 山田太郎 ", "山田  太郎"])
def test_a_kanji_name_meets_with_or_without_spaces_of_either_width(typed: str) -> None:
    assert normalise_name(typed) == "山田太郎"


@pytest.mark.parametrize("typed", ["ヤマダ タロウ", "やまだ たろう", "ヤマダ\u3000タロウ",
                                   HALF_WIDTH_YAMADA_TARO])
def test_a_kana_name_meets_in_hiragana_katakana_and_half_width_katakana(typed: str) -> None:
    assert normalise_name(typed) == "ヤマダタロウ"


@pytest.mark.parametrize("typed", ["Hanako Zzyzx", "hanako zzyzx", full_width("HANAKO ZZYZX"), "ハナコ・ズィズィクス"])
def test_latin_names_fold_case_and_width_and_katakana_loses_its_middle_dot(typed: str) -> None:
    expected = "ハナコズィズィクス" if "・" in typed else "hanakozzyzx"
    assert normalise_name(typed) == expected


@pytest.mark.parametrize("typed", ["03-1234-5678", "0312345678", "03 (1234) 5678", full_width("03-1234-5678"),
                                   "+81 3-1234-5678", "+81-(0)3-1234-5678", full_width("+81 3 1234 5678")])
def test_a_phone_is_its_digits_with_the_trunk_zero(typed: str) -> None:
    assert normalise_phone(typed) == "0312345678"


@pytest.mark.parametrize("typed", ["1968-04-01", "1968/4/1", "19680401", "1968年4月1日", full_width("1968-04-01"),
                                   full_width("1968/4/1"), "1968.04.01", " 1968-04-01 ", date(1968, 4, 1)])
def test_a_birth_date_is_read_in_the_desks_usual_forms(typed: str | date) -> None:
    assert normalise_birth_date(typed) == "1968-04-01"


@pytest.mark.parametrize("typed", ["1968-02-30", "68-04-01", "April 1st", "", "1968-13-01"])
def test_what_is_no_date_is_none(typed: str) -> None:
    assert normalise_birth_date(typed) is None


def test_the_index_keeps_keyed_digests_of_the_normalised_values_never_the_values() -> None:
    index = BlindIndex(b"k" * 32)
    entries = index.entries(names=("山田 太郎", "やまだ たろう", None), birth_date=date(1968, 4, 1),
                            phone="03-1234-5678")
    assert sorted(kind for kind, _ in entries) == [SearchKind.BIRTH_DATE, SearchKind.NAME, SearchKind.NAME,
                                                   SearchKind.PHONE]
    assert (SearchKind.NAME, index.digest(SearchKind.NAME, normalise_name("ヤマダタロウ"))) in entries
    assert (SearchKind.PHONE, index.digest(SearchKind.PHONE, "0312345678")) in entries
    assert all(len(digest) == 32 for _, digest in entries)
    assert all(b"0312345678" not in digest and b"1968" not in digest for _, digest in entries)


def test_the_digest_depends_on_the_key_and_on_the_kind() -> None:
    one, other = BlindIndex(b"one"), BlindIndex(b"other")
    assert one.digest(SearchKind.PHONE, "0312345678") == one.digest(SearchKind.PHONE, "0312345678")
    assert one.digest(SearchKind.PHONE, "0312345678") != other.digest(SearchKind.PHONE, "0312345678")
    assert one.digest(SearchKind.PHONE, "19680401") != one.digest(SearchKind.BIRTH_DATE, "19680401")


def test_a_case_without_a_phone_has_no_phone_row() -> None:
    entries = BlindIndex(b"k").entries(names=("山田太郎",), birth_date=date(1968, 4, 1), phone=None)
    assert SearchKind.PHONE not in {kind for kind, _ in entries}
