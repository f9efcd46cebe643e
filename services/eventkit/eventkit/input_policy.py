"""One policy for what text, numbers and dates a request may carry, the same on every service.

At the edge (`InputPolicy`, before any route sees the request) a JSON body is parsed strictly: duplicate keys,
NaN/Infinity (and numbers too large for a float), lone surrogates and invalid UTF-8 are refused with 422; every
string is NFC-normalised, CRLF becomes LF, and control characters, format characters (bidirectional overrides,
zero-width characters), surrogates and noncharacters are refused; strings, lists and nesting are bounded. Query
strings get the same string rule. What passes is handed on re-encoded, so routes see only normalised text.

In the request models (`RequestModel`) a newline is refused in every string field except those marked `Prose`.
`BirthDate` and `DeskDate` bound dates to what the desk can meet. Refusals never echo the input: a 422 says where
and why, not what was sent (it may be a patient's name); eventkit.http makes every 422 so.
"""

from __future__ import annotations

import json
import unicodedata
from datetime import date
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator

from eventkit.clock import tokyo_date, utc_now
from eventkit.http import read_body, replay, unprocessable

MAX_STRING_CHARS = 20_000  # the longest prose a route takes (a report's opinion); routes bound tighter
MAX_LIST_ITEMS = 1_000
MAX_DEPTH = 16
# Characters that are never text: C0/C1 controls other than LF, format characters (RTL overrides, zero-width
# spaces, BOM), surrogates, private-use is allowed (gaiji in Japanese names), unassigned code points refused.
_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Cn"}
_ALLOWED_CONTROLS = {"\n"}


class InputRefused(ValueError):
    """A request input the policy refuses; `location` as FastAPI gives it, `message` never quotes the input."""

    def __init__(self, location: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.location = location
        self.message = message


def clean_text(value: str, location: tuple[str | int, ...] = ()) -> str:
    """`value` NFC-normalised with CRLF as LF; InputRefused for a character that is not text."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InputRefused(location, "contains a lone surrogate, which is not text") from None
    if len(value) > MAX_STRING_CHARS:
        raise InputRefused(location, f"longer than {MAX_STRING_CHARS} characters")
    value = unicodedata.normalize("NFC", value.replace("\r\n", "\n"))
    for offset, character in enumerate(value):
        if character in _ALLOWED_CONTROLS:
            continue
        category = unicodedata.category(character)
        if category in _REFUSED_CATEGORIES or _is_noncharacter(character):
            raise InputRefused(location, f"character {offset + 1} (U+{ord(character):04X}, {category}) is a control, "
                                         "format or unassigned character, which text may not contain")
    return value


def _is_noncharacter(character: str) -> bool:
    code = ord(character)
    return 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InputRefused(("body",), f"the key {json.dumps(key[:40])} appears twice in one object")
        result[key] = value
    return result


def _finite(text: str) -> float:
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise InputRefused(("body",), "a number is too large")
    return number


def _not_a_number(constant: str) -> float:
    raise InputRefused(("body",), f"{constant} is not a number JSON allows")


def parse_json(body: bytes) -> Any:
    """The body as JSON under the policy (InputRefused otherwise), every string cleaned."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InputRefused(("body",), "the body is not valid UTF-8") from None
    try:
        document = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_not_a_number,
                               parse_float=_finite)
    except InputRefused:
        raise
    except (ValueError, RecursionError) as error:
        raise InputRefused(("body",), f"the body is not valid JSON ({error.__class__.__name__})") from None
    return _cleaned(document, ("body",), 0)


def _cleaned(value: Any, location: tuple[str | int, ...], depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise InputRefused(location, f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, str):
        return clean_text(value, location)
    if isinstance(value, list):
        if len(value) > MAX_LIST_ITEMS:
            raise InputRefused(location, f"a list of more than {MAX_LIST_ITEMS} items")
        return [_cleaned(item, (*location, index), depth + 1) for index, item in enumerate(value)]
    if isinstance(value, dict):
        return {clean_text(key, (*location, "<key>")): _cleaned(item, (*location, key), depth + 1)
                for key, item in value.items()}
    return value


def check_query(query_string: bytes) -> None:
    try:
        pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise InputRefused(("query",), "the query string is not valid UTF-8") from None
    for name, value in pairs:
        clean_text(name, ("query",))
        clean_text(value, ("query", name[:40]))


def refusal(location: tuple[str | int, ...], message: str) -> JSONResponse:
    """The policy's 422: the same body as a request model's (eventkit.http.unprocessable), of type `input_policy`."""
    return unprocessable([("input_policy", location, message)])


class InputPolicy:
    """ASGI middleware: every JSON body and query string through the policy before a route sees it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            check_query(scope.get("query_string", b""))
        except InputRefused as refused:
            await refusal(refused.location, refused.message)(scope, receive, send)
            return
        content_type = dict(scope.get("headers") or []).get(b"content-type", b"").split(b";")[0].strip().lower()
        # FastAPI reads a body without a content type as JSON too.
        if content_type and content_type != b"application/json" and not content_type.endswith(b"+json"):
            await self.app(scope, receive, send)
            return
        body, more = await read_body(receive)
        if more is not None:  # the client went away mid-body: let the app see that
            await self.app(scope, replay(body, more), send)
            return
        if body.strip():
            try:
                body = json.dumps(parse_json(body), ensure_ascii=False).encode()
            except InputRefused as refused:
                await refusal(refused.location, refused.message)(scope, receive, send)
                return
        _set_length(scope, len(body))
        await self.app(scope, replay(body), send)


def _set_length(scope: dict[str, Any], length: int) -> None:
    """The re-encoded body's length, in the scope itself: the router's additions to the scope (the route matched,
    which the metrics read) must reach the middleware around this one."""
    headers = [(name, value) for name, value in scope.get("headers") or [] if name != b"content-length"]
    scope["headers"] = [*headers, (b"content-length", str(length).encode())]


# --- in request models ---------------------------------------------------------------------------------

class _ProseMarker:
    """Marks a string field whose text may run over several lines."""


Prose = _ProseMarker()


class RequestModel(BaseModel):
    """The base of every request body: unknown fields refused, whitespace stripped, and no newline in any string
    field not marked `Prose` (a name or an id on two lines is a forgery or a paste error)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="after")
    def _single_line_unless_prose(self) -> RequestModel:
        for name, info in type(self).model_fields.items():
            if any(isinstance(marker, _ProseMarker) for marker in info.metadata):
                continue
            value = getattr(self, name)
            values = value if isinstance(value, list | tuple) else [value]
            if any(isinstance(item, str) and "\n" in item for item in values):
                raise ValueError(f"{info.alias or name} must be on one line")
        return self


EARLIEST_BIRTH_DATE = date(1900, 1, 1)
EARLIEST_DESK_DATE = date(2000, 1, 1)
LATEST_DESK_DATE = date(2099, 12, 31)


def _plausible_birth_date(value: date) -> date:
    if value < EARLIEST_BIRTH_DATE:
        raise ValueError(f"a birth date must be on or after {EARLIEST_BIRTH_DATE}")
    if value > tokyo_date(utc_now()):
        raise ValueError("a birth date cannot be in the future")
    return value


def _plausible_desk_date(value: date) -> date:
    if not EARLIEST_DESK_DATE <= value <= LATEST_DESK_DATE:
        raise ValueError(f"must be between {EARLIEST_DESK_DATE} and {LATEST_DESK_DATE}")
    return value


BirthDate = Annotated[date, AfterValidator(_plausible_birth_date)]
# A day the desk works with: a document's receipt, a consultation, a report range.
DeskDate = Annotated[date, AfterValidator(_plausible_desk_date)]
