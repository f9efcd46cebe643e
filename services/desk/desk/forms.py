"""Input as Japanese staff type it, made into what the APIs take: full-width digits and punctuation
(NFKC), dates written 2026/12/02 or 2026年12月2日, amounts written 33,000 or ３３，０００円, times 9:30.
A value that cannot be read raises FieldError with the message shown at the field; nothing is sent."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, time

from desk.catalogue import TEXT
from desk.departments import Departments


class FieldError(ValueError):
    def __init__(self, field: str, message_ja: str, message_en: str, status: int = 422) -> None:
        super().__init__(message_en)
        self.field = field
        self.messages = (message_ja, message_en)
        self.status = status  # 503: what the field is checked against could not be had

    def message(self, lang: str) -> str:
        return self.messages[0] if lang == "ja" else self.messages[1]


def text(value: str | None) -> str:
    """NFKC (full-width letters and digits to half-width, half-width kana to full-width), trimmed."""
    return unicodedata.normalize("NFKC", value or "").strip()


def required(field: str, value: str | None) -> str:
    cleaned = text(value)
    if not cleaned:
        raise FieldError(field, "入力してください", "Required")
    return cleaned


_DATE = re.compile(r"^(\d{4})\s*[/\-.年]\s*(\d{1,2})\s*[/\-.月]\s*(\d{1,2})\s*日?$")


def a_date(field: str, value: str | None) -> date:
    cleaned = required(field, value)
    match = _DATE.match(cleaned)
    if match is None:
        raise FieldError(field, "日付は 2026/12/02 のように入力してください", "Write the date as 2026/12/02")
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise FieldError(field, "その日付はありません", "No such date") from None


def optional_date(field: str, value: str | None) -> date | None:
    return a_date(field, value) if text(value) else None


_AMOUNT = re.compile(r"^[¥￥]?\s*(\d{1,3}(?:,\d{3})+|\d+)\s*円?$")


def yen(field: str, value: str | None) -> int:
    cleaned = required(field, value).replace("，", ",")
    match = _AMOUNT.match(cleaned)
    if match is None:
        raise FieldError(field, "金額は 33,000 のように円単位の整数で入力してください",
                         "Write the amount in whole yen, e.g. 33,000")
    amount = int(match[1].replace(",", ""))
    if amount <= 0:
        raise FieldError(field, "1円以上を入力してください", "At least 1 yen")
    return amount


_TIME = re.compile(r"^(\d{1,2})\s*[:時]\s*(\d{2})\s*分?$")


def times(field: str, value: str | None) -> list[str]:
    """A list of local start times ("9:30, 10:30" or "９：３０、１０：３０") as HH:MM."""
    cleaned = required(field, value)
    found = []
    for part in re.split(r"[,、\s]+", cleaned):
        if not part:
            continue
        match = _TIME.match(part)
        if match is None:
            raise FieldError(field, "時刻は 9:30 のように入力してください", "Write times as 9:30")
        try:
            found.append(time(int(match[1]), int(match[2])).strftime("%H:%M"))
        except ValueError:
            raise FieldError(field, "その時刻はありません", "No such time") from None
    return found


def whole_number(field: str, value: str | None) -> int:
    cleaned = required(field, value)
    if not cleaned.isdigit():
        raise FieldError(field, "数字で入力してください", "Write a number")
    return int(cleaned)


def phone(field: str, value: str | None) -> str | None:
    cleaned = text(value).replace("ー", "-").replace("−", "-")
    if not cleaned:
        return None
    if not re.fullmatch(r"[0-9+\-() ]{3,30}", cleaned):
        raise FieldError(field, "電話番号は数字とハイフンで入力してください", "Digits and hyphens only")
    return cleaned


def choice(field: str, value: str | None, allowed: list[str] | tuple[str, ...]) -> str:
    cleaned = text(value)
    if cleaned not in allowed:
        raise FieldError(field, "選択してください", "Pick one")
    return cleaned


def department(field: str, value: str | None, offered: Departments) -> str:
    """A department of intake's catalogue (desk.departments); refused at the field when it is not one of it, or when
    the catalogue could not be had (503: the form cannot be checked, nothing is sent)."""
    if not offered.available:
        raise FieldError(field, *TEXT["departments_unavailable"], status=503)
    return choice(field, value, offered.codes)


def checked(value: str | None) -> bool:
    return value in ("on", "true", "yes", "1")
