"""Finding a case when the patient calls back: the case number read over the phone, and the keyed blind index of the
patient's name, birth date and the requester's phone. Pure: values in, normalised values and digests out.

Events carry no personal data and intake seals it per case, so nothing can be searched in clear. Intake keeps, per
case, an HMAC-SHA256 of each normalised value, keyed with `INTAKE_SEARCH_INDEX_KEY` (never in the database); a search
normalises what the caller said the same way and looks its digest up. The same key and the same normalisation on both
sides are what make full-width and half-width, hiragana and katakana, spaced and unspaced input meet.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass
from datetime import date

CASE_NUMBER_PREFIX = "SO"
# Hyphens and dashes a number read over the phone may be typed with (NFKC leaves these apart from "-").
# (U+2010..U+2015, the minus sign U+2212, the katakana long vowel mark U+30FC, and their full- and half-width forms.)
_DASHES = dict.fromkeys([*range(0x2010, 0x2016), 0x2212, 0x30FC, 0xFF0D, 0xFF70], "-")
_CASE_NUMBER = re.compile(rf"^(?:{CASE_NUMBER_PREFIX})?-?(\d{{4}})-?(\d{{1,9}})$")
# What a name is written with besides its letters: spaces (NFKC makes the ideographic space one), the middle dot of
# foreign names in katakana.
_NAME_SEPARATORS = re.compile(r"[\s・·･.]+")
_HIRAGANA = range(0x3041, 0x3097)  # ぁ..ゖ, each 0x60 below its katakana
_BIRTH_DATE = re.compile(r"^(\d{4})[-/.年]?(\d{1,2})[-/.月]?(\d{1,2})日?$")


class SearchKind:
    """What the index keeps a digest of (also the access log's word for what was searched by)."""

    NAME = "name"
    BIRTH_DATE = "birth_date"
    PHONE = "phone"


def case_number(year: int, sequence: int) -> str:
    """SO-2026-00123: the year the case was submitted in (Asia/Tokyo) and its place in that year."""
    return f"{CASE_NUMBER_PREFIX}-{year:04d}-{sequence:05d}"


def normalise_case_number(value: str) -> str | None:
    """The case number as intake writes it, from what was typed: "so-2026-123", "SO 2026 00123", in full-width
    letters and digits, with any dash; None if it is no case number."""
    text = re.sub(r"\s+", "", unicodedata.normalize("NFKC", value).translate(_DASHES)).upper()
    match = _CASE_NUMBER.match(text)
    if match is None or int(match.group(2)) == 0:
        return None
    return case_number(int(match.group(1)), int(match.group(2)))


def normalise_name(value: str) -> str:
    """A name as the index keeps it: NFKC (full-width Latin to half-width, half-width katakana to full-width), no
    spaces (the ideographic one too) or middle dots, hiragana as katakana, Latin case-folded. "山田 太郎" and
    "山田太郎" meet, as do "やまだ たろう", "ヤマダタロウ" and the same in half-width katakana."""
    text = _NAME_SEPARATORS.sub("", unicodedata.normalize("NFKC", value))
    return "".join(chr(ord(c) + 0x60) if ord(c) in _HIRAGANA else c for c in text).casefold()


def normalise_phone(value: str) -> str:
    """Digits only (full-width ones too), a Japanese international prefix as the trunk 0: "+81 3-1234-5678" and
    "03 (1234) 5678" in full-width digits are both 0312345678."""
    text = unicodedata.normalize("NFKC", value).strip()
    digits = re.sub(r"\D", "", text)
    if text.startswith("+81"):
        digits = "0" + digits.removeprefix("81").removeprefix("0")
    return digits


def normalise_birth_date(value: str | date) -> str | None:
    """ISO 8601 (1968-04-01) from "1968-04-01", "1968/4/1" (in full-width digits too), "19680401" or "1968年4月1日";
    None if it is no date."""
    if isinstance(value, date):
        return value.isoformat()
    text = re.sub(r"\s+", "", unicodedata.normalize("NFKC", value)).translate(_DASHES)
    match = _BIRTH_DATE.match(text)
    if match is None:
        return None
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3))).isoformat()
    except ValueError:
        return None


@dataclass(frozen=True)
class BlindIndex:
    """The keyed digests of normalised values: equal for equal values under one key, and nothing to read without it."""

    key: bytes

    def digest(self, kind: str, normalised: str) -> bytes:
        return hmac.new(self.key, f"{kind}\x1f{normalised}".encode(), hashlib.sha256).digest()

    def entries(self, *, names: tuple[str | None, ...], birth_date: date | None,
                phone: str | None) -> list[tuple[str, bytes]]:
        """The (kind, digest) rows a case is found by: each name given (kanji, kana), the birth date, the phone."""
        values = [(SearchKind.NAME, normalise_name(name)) for name in names if name]
        if birth_date is not None:
            values.append((SearchKind.BIRTH_DATE, birth_date.isoformat()))
        if phone:
            values.append((SearchKind.PHONE, normalise_phone(phone)))
        return sorted({(kind, self.digest(kind, value)) for kind, value in values if value})
