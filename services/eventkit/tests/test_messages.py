"""Refusals in the reader's language: which language a request asks for, and the Japanese of each kind of 4xx."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from eventkit.messages import ENGLISH, JAPANESE, REFUSALS_JA, field_errors, preferred_language, refusal


@pytest.mark.parametrize(("header", "language"), [
    ("ja", JAPANESE), ("ja-JP", JAPANESE), ("ja-JP,ja;q=0.9,en;q=0.8", JAPANESE), ("fr,ja;q=0.5", JAPANESE),
    ("en-US,en;q=0.9,ja;q=0.8", ENGLISH), ("en;q=0.5,ja;q=0.9", JAPANESE), ("ja;q=0,en", ENGLISH),
    ("ja,en", JAPANESE), ("en,ja", ENGLISH), ("", ENGLISH), (None, ENGLISH), ("*", ENGLISH),
    ("ja;q=nonsense", ENGLISH), ("fr", ENGLISH),
])
def test_japanese_when_it_comes_before_english_in_accept_language(header: str | None, language: str) -> None:
    assert preferred_language(header) == language


def test_a_refusal_keeps_its_english_and_reads_japanese_by_its_code() -> None:
    assert refusal("not_ready", "the case cannot be accepted yet: document:test_results",
                   ["document:test_results"], ENGLISH) == "the case cannot be accepted yet: document:test_results"
    assert refusal("not_ready", "...", ["document:test_results"], JAPANESE) == \
        "必要なものがそろっていないため、まだ実行できません。不足しているもの: document:test_results"
    assert refusal("already_paid", "the invoice is paid", [], JAPANESE) == REFUSALS_JA["already_paid"]


def test_a_refusal_named_after_a_state_says_the_state_in_japanese() -> None:
    assert refusal("case_withdrawn", "cannot withdraw: the case is withdrawn", [], JAPANESE) == \
        "案件は取り下げ済みのため、この操作はできません。"
    assert refusal("appointment_cancelled", "...", [], JAPANESE) == "予約は取り消し済みのため、この操作はできません。"
    assert refusal("report_finalized", "...", [], JAPANESE) == "報告書は確定済みのため、この操作はできません。"
    assert refusal("some_new_code", "...", [], JAPANESE) == REFUSALS_JA["conflict"], "never English to a ja reader"


class Sample(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=5)
    count: int = Field(ge=1)


def errors_of(data: dict[str, object]) -> list[dict[str, object]]:
    with pytest.raises(ValidationError) as invalid:
        Sample.model_validate(data)
    return [dict(error) for error in invalid.value.errors(include_url=False)]


def test_field_errors_get_japanese_messages_and_keep_type_and_location() -> None:
    errors = errors_of({"name": "toolong", "count": 0, "extra": 1})
    translated = field_errors(errors, JAPANESE)
    assert [(e["type"], e["loc"], e["msg"]) for e in translated] == [
        ("string_too_long", ("name",), "5文字以内で入力してください。"),
        ("greater_than_equal", ("count",), "1以上の値にしてください。"),
        ("extra_forbidden", ("extra",), "この項目は受け付けていません。"),
    ]
    assert field_errors(errors, ENGLISH) == errors
    assert field_errors([{"type": "missing", "loc": ("body", "name"), "msg": "Field required"}], JAPANESE)[0][
        "msg"] == "必須の項目です。"


def test_an_error_the_catalogue_does_not_know_is_japanese_with_the_english_beside_it() -> None:
    [unknown] = field_errors([{"type": "brand_new_check", "loc": ("x",), "msg": "x is odd"}], JAPANESE)
    assert unknown["msg"] == "入力内容に誤りがあります（x is odd）。"
    [value] = field_errors([{"type": "value_error", "loc": ("to",), "msg": "the range ends before it starts"}],
                           JAPANESE)
    assert value["msg"] == "値が正しくありません（the range ends before it starts）。"
