"""Fast checks: input as Japanese staff type it, and a Japanese word for every refusal the services can give."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from desk import catalogue, forms
from secondopinion_contracts.codes import DeclineReason, DocumentKind, RefusalReason

SERVICES = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("typed", "expected"), [
    ("2026/12/02", date(2026, 12, 2)), ("２０２６/１２/０２", date(2026, 12, 2)), ("2026年12月2日", date(2026, 12, 2)),
    ("2026-1-5", date(2026, 1, 5)), (" 2026.12.02 ", date(2026, 12, 2)),
])
def test_dates_as_staff_type_them(typed: str, expected: date) -> None:
    assert forms.a_date("d", typed) == expected


@pytest.mark.parametrize("typed", ["昭和25年", "2026/02/30", "12/02", ""])
def test_a_date_that_cannot_be_read_is_refused_at_its_field(typed: str) -> None:
    with pytest.raises(forms.FieldError) as refused:
        forms.a_date("birth", typed)
    assert refused.value.field == "birth"
    assert refused.value.message("ja")


@pytest.mark.parametrize(("typed", "expected"), [
    ("33,000", 33_000), ("３３，０００", 33_000), ("33000円", 33_000), ("¥33,000", 33_000), ("￥３３０００", 33_000),
])
def test_amounts_as_staff_type_them(typed: str, expected: int) -> None:
    assert forms.yen("amount", typed) == expected


@pytest.mark.parametrize("typed", ["33,00", "3.5", "-100", "0", "三万"])
def test_an_amount_that_is_not_whole_yen_is_refused(typed: str) -> None:
    with pytest.raises(forms.FieldError):
        forms.yen("amount", typed)


def test_times_and_phone_numbers_as_staff_type_them() -> None:
    assert forms.times("t", "９：３０、10:30 14時00分") == ["09:30", "10:30", "14:00"]
    assert forms.phone("p", "０３－１２３４－５６７８") == "03-1234-5678"
    with pytest.raises(forms.FieldError):
        forms.times("t", "25:00")


def test_every_refusal_code_the_services_raise_has_words() -> None:
    raised = set()
    for source in SERVICES.glob("*/*/*.py"):
        if source.parts[-3] == "desk":
            continue
        raised |= set(re.findall(r'code="([a-z_]+)"', source.read_text(encoding="utf-8")))
    assert {"not_ready", "wrong_amount", "slot_unavailable"} <= raised, "the scan finds the services' codes"
    missing = sorted(code for code in raised if code not in catalogue.REFUSALS
                     and not any(key.endswith(f".{code}") for key in catalogue.REFUSALS))
    assert not missing, f"refusal codes without Japanese words: {missing}"


def test_every_reason_and_document_has_words_in_both_languages() -> None:
    for key in ([f"reason.{r.value}" for r in (*RefusalReason, *DeclineReason)]
                + [f"document.{k.value}" for k in DocumentKind]):
        assert key in catalogue.LABELS, key
        assert catalogue.label(key, "ja") != catalogue.label(key, "en")
    assert catalogue.refusal_detail("document:consent_form", "ja") == "同意書"
    assert catalogue.refusal("not_started", "ja", "scheduling") != catalogue.refusal("not_started", "ja", "reporting")


def test_every_access_log_action_the_services_write_has_words() -> None:
    written = set()
    for source in SERVICES.glob("*/*/*.py"):
        if source.parts[-3] == "desk":
            continue
        text = source.read_text(encoding="utf-8")
        written |= set(re.findall(r'record_access\([^)]*"([a-z_]+)"\)', text))
        written |= set(re.findall(r'listing\("([a-z_]+)"', text))
    assert {"read_case_personal_data", "read_case_names_for_counter", "list_cases"} <= written, "the scan finds them"
    missing = sorted(action for action in written if f"access.{action}" not in catalogue.LABELS)
    assert not missing, f"access-log actions without words: {missing}"
    # Built from parts: a search by what it searched by, a printed document's read by document and service.
    assert catalogue.access_action("search_cases_by_name_and_birth_date", "ja") == "案件の検索（氏名・生年月日）"
    assert catalogue.access_action("search_cases_by_phone_and_name", "en") == "Searched cases (phone, name)"
    for purpose, service in (("receipt", "billing"), ("slip", "scheduling"), ("report", "reporting")):
        assert f"access.read_personal_data_for_{purpose}_via_{service}" in catalogue.LABELS
