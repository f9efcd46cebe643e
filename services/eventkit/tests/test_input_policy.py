"""The one input policy: strict JSON, clean text, single-line fields, plausible dates, refusals that quote nothing."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import Field, ValidationError

from eventkit.http import validation_refused
from eventkit.input_policy import (
    MAX_DEPTH,
    MAX_LIST_ITEMS,
    MAX_STRING_CHARS,
    BirthDate,
    DeskDate,
    InputPolicy,
    InputRefused,
    Prose,
    RequestModel,
    clean_text,
    parse_json,
)


@pytest.mark.parametrize(("text", "why"), [
    ('{"a": 1, "a": 2}', "appears twice"),
    ('{"amount": NaN}', "NaN"),
    ('{"amount": Infinity}', "Infinity"),
    ('{"amount": -Infinity}', "Infinity"),
    ('{"amount": 1e999}', "too large"),
    ('{"name": "\\ud800"}', "lone surrogate"),
    ('{"name": "a\\u0000b"}', "U+0000"),
    ('{"name": "\\u202eevil"}', "U+202E"),
    ('{"name": "\\u200b\\u200b"}', "U+200B"),
    ('{"name": "\\ufffe"}', "U+FFFE"),
    ('{"name": "\\ufdd0"}', "U+FDD0"),
    ('{"name": "a\\rb"}', "U+000D"),
    ('{"name": "tab\\there"}', "U+0009"),
    ('{"a": 1', "not valid JSON"),
    ('{"n": ' + "9" * 5000 + "}", "not valid JSON"),
])
def test_hostile_json_is_refused_saying_why(text: str, why: str) -> None:
    with pytest.raises(InputRefused) as refused:
        parse_json(text.encode())
    assert why in refused.value.message


def test_invalid_utf8_is_refused() -> None:
    with pytest.raises(InputRefused, match="UTF-8"):
        parse_json(b'{"name": "\xff"}')


def test_strings_are_nfc_normalised_and_crlf_becomes_lf() -> None:
    decomposed = "\u30cf\u309a"  # katakana HA + combining handakuten, as some input methods send it
    parsed = parse_json(json.dumps({"name": decomposed, "note": "one\r\ntwo"}).encode())
    assert parsed == {"name": "\u30d1", "note": "one\ntwo"}


def test_private_use_characters_pass_for_names_in_gaiji() -> None:
    assert clean_text("\ue000") == "\ue000"


@pytest.mark.parametrize(("document", "bound"), [
    ({"text": "x" * (MAX_STRING_CHARS + 1)}, f"longer than {MAX_STRING_CHARS}"),
    ({"items": list(range(MAX_LIST_ITEMS + 1))}, f"more than {MAX_LIST_ITEMS} items"),
])
def test_strings_and_lists_are_bounded_saying_the_bound(document: dict[str, Any], bound: str) -> None:
    with pytest.raises(InputRefused, match=bound):
        parse_json(json.dumps(document).encode())


def test_nesting_is_bounded() -> None:
    with pytest.raises(InputRefused, match=f"more than {MAX_DEPTH} levels"):
        parse_json(("[" * (MAX_DEPTH + 2) + "]" * (MAX_DEPTH + 2)).encode())


class Note(RequestModel):
    title: Annotated[str, Field(max_length=100)]
    tags: list[str] = []
    text: Annotated[str, Field(max_length=1000), Prose]


def test_a_newline_is_refused_except_in_prose() -> None:
    assert Note(title="A", text="line one\nline two").text == "line one\nline two"
    for bad in ({"title": "A\nB", "text": "x"}, {"title": "A", "tags": ["a\nb"], "text": "x"}):
        with pytest.raises(ValidationError, match="must be on one line"):
            Note.model_validate(bad)


class Dates(RequestModel):
    born: BirthDate | None = None
    received: DeskDate | None = None


@pytest.mark.parametrize(("field", "value", "why"), [
    ("born", date(1, 1, 1), "on or after 1900-01-01"),
    ("born", date.today() + timedelta(days=2), "cannot be in the future"),
    ("received", date(9999, 12, 31), "between 2000-01-01 and 2099-12-31"),
    ("received", date(1999, 12, 31), "between 2000-01-01 and 2099-12-31"),
])
def test_implausible_dates_are_refused(field: str, value: date, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        Dates.model_validate({field: value})
    assert Dates(born=date(1968, 4, 1), received=date(2026, 12, 1)).born == date(1968, 4, 1)


class Person(RequestModel):
    name: Annotated[str, Field(max_length=20)]


def policed_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(InputPolicy)
    app.add_exception_handler(RequestValidationError, validation_refused)

    @app.post("/people")
    async def add(person: Person) -> dict[str, str]:
        return {"name": person.name}

    @app.get("/people")
    async def find(name: str = "") -> dict[str, str]:
        return {"name": name}

    return app


async def test_the_middleware_hands_routes_normalised_text_and_refuses_hostile_input() -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=policed_app()), base_url="http://t") as client:
        normalised = await client.post("/people", content=json.dumps({"name": "\u30cf\u309a"}).encode(),
                                       headers={"content-type": "application/json"})
        assert normalised.json() == {"name": "\u30d1"}
        for raw in (b'{"name": "\\ud800"}', b'{"name": "a", "name": "b"}', b'{"name": NaN}'):
            refused = await client.post("/people", content=raw, headers={"content-type": "application/json"})
            assert refused.status_code == 422, raw
            assert refused.json()["detail"][0]["loc"][0] == "body"
        untyped = await client.post("/people", content=b'{"name": "\\ud800"}')
        assert untyped.status_code == 422, "FastAPI reads a body without a content type as JSON: so does the policy"
        query = await client.get("/people", params={"name": "a\x00b"})
        assert query.status_code == 422
        assert query.json()["detail"][0]["loc"] == ["query", "name"]


async def test_a_refusal_does_not_echo_what_was_sent() -> None:
    secret = "Hanako Zzyzx-Canary-Much-Too-Long-Name"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=policed_app()), base_url="http://t") as client:
        refused = await client.post("/people", json={"name": secret})
    assert refused.status_code == 422
    assert "at most 20 characters" in refused.text
    assert "Zzyzx" not in refused.text
