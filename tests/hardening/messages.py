"""Hypothesis strategies for messages another system (broken or hostile) might put into a service's inbox.

Two families, told apart by what the consumer must do with them:
- `malformed`: never a usable event under the contracts: not JSON or not an envelope, an envelope with missing or
  mistyped attributes, an unknown type or version, data missing fields or with values of the wrong type or
  outside the contract (injection strings in coded fields, over-long and huge strings, NUL bytes, impossible
  dates, negative amounts). Each must be dead-lettered at once, with the reason the test expects.
- `in_contract`: envelopes and data the contracts accept, with the nastiest values they still allow (injection-
  and markup-looking staff ids, NUL bytes and control characters where no pattern forbids them, integers beyond
  64 bits, year 1 and 9999, naive times, huge subjects, unknown extra fields). These may be handled or dead-
  lettered, but never lost, stuck or crash the consumer.

Both come with hostile AMQP properties: wrong or missing content type, no message id, no headers, junk headers
(including a forged attempt count)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from hypothesis import strategies as st

from eventkit.consumer import ATTEMPTS_HEADER, REASON_HEADER
from eventkit.testing import make_envelope
from reporting.testing import Case
from secondopinion_contracts import EventData
from secondopinion_contracts.codes import DocumentKind, Mode, RefusalReason
from secondopinion_contracts.envelope import event_type

INVALID_ENVELOPE = "invalid-envelope"
UNKNOWN_TYPE = "unknown-event-type"
SCHEMA_INVALID = "schema-invalid"

HUGE = 200_000  # characters: far beyond any field's limit, still well within a broker frame
INJECTIONS = ("'; DROP TABLE case_board; --", "' OR '1'='1", "<script>alert(1)</script>", "{{7*7}}", "${jndi:ldap://x}",
              "../../../../etc/passwd")
# Legal wherever a string has no pattern, and unpleasant for whatever stores, logs or shows it.
NASTY_TEXT = (*INJECTIONS, "a\x00b", "\u202eevil\u202c", "\U0001f4a5" * 20, " ", "\t\r\n", "\\u0000", "null", "💊 患者")
GARBAGE = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
).map(lambda inner: {"$garbage": inner})  # an object: never a valid value for any field of any event


@dataclass(frozen=True)
class Hostile:
    """One message as published: the body and AMQP properties, where it is sent, and what must become of it."""

    label: str
    body: bytes
    expected_reason: str | None  # the dead-letter reason required; None: handled or dead-lettered, never lost
    envelope_id: str | None = None  # the event id, when the body is a parseable envelope
    content_type: str | None = None
    headers: dict[str, Any] | None = None
    message_id: str | None = None
    routing_key: str = ""  # on the events exchange; empty: straight into the inbox queue

    def __repr__(self) -> str:  # Hypothesis prints failing examples: keep huge bodies readable
        body = self.body if len(self.body) <= 300 else self.body[:300] + b"...(%d bytes)" % len(self.body)
        return (f"Hostile({self.label!r}, body={body!r}, expected={self.expected_reason!r}, "
                f"content_type={self.content_type!r}, headers={_short(self.headers)}, message_id={self.message_id!r}, "
                f"routing_key={self.routing_key!r})")

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 300 else text[:300] + "..."


def sample_events() -> list[EventData]:
    """One valid event of every type the test support can build, all about one case."""
    case = Case("cardiology", Mode.IN_PERSON)
    day = date(2026, 12, 1)
    return [
        case.submitted(day), case.consent(), case.document(DocumentKind.REFERRAL_LETTER, day), case.accepted(),
        case.declined(RefusalReason.ATTENDING_PHYSICIAN_NOT_CONSENTING), case.withdrawn(), case.proposed(day),
        case.confirmed(day), case.rescheduled(day), case.cancelled_by_hospital(), case.completed(day),
        case.no_show(day), case.slip(day), case.booked_online(), case.invoiced(), case.paid(day),
        case.payment_failed(), case.refunded(),
    ]


@dataclass(frozen=True)
class Inbox:
    """What one service's inbox takes: the event types it handles (all known ones for a catch-all) and its bindings."""

    service: str
    handled: frozenset[str]
    bindings: tuple[str, ...]

    def samples(self) -> list[EventData]:
        return [event for event in sample_events() if event.type_name() in self.handled]

    def unhandled(self) -> list[EventData]:
        return [event for event in sample_events() if event.type_name() not in self.handled]

    def routing_for(self, envelope_type: str) -> st.SearchStrategy[str]:
        """Straight into the inbox queue, or through the exchange on a routing key the inbox is bound to."""
        key = envelope_type.removeprefix("secondopinion.")
        bound = any(binding in (key, "#") for binding in self.bindings)
        return st.sampled_from(["", key] if bound else [""])


# --- AMQP properties ---------------------------------------------------------------------------------------------

CONTENT_TYPES = (None, "application/cloudevents+json", "application/json", "application/xml", "text/plain",
                 "application/octet-stream", "text/html; charset=utf-16", "multipart/form-data; boundary=x", "")
ATTEMPT_FORGERIES: tuple[Any, ...] = ("abc", "", -5, -(2**40), 2**40, 3.5, True, None, [1, 2], {"n": 1},
                                      "1e9", " 7 ")
HEADER_VALUES = st.one_of(
    st.text(max_size=50), st.integers(-(2**63), 2**63 - 1), st.booleans(), st.none(),
    st.floats(width=32, allow_nan=False, allow_infinity=False), st.lists(st.text(max_size=10), max_size=3),
    st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=10), max_size=3),
    st.just("x" * 20_000),
)


@st.composite
def amqp_properties(draw: st.DrawFn) -> dict[str, Any]:
    headers: dict[str, Any] | None = draw(st.one_of(
        st.none(), st.just({}),
        st.dictionaries(st.text(min_size=1, max_size=40), HEADER_VALUES, max_size=4),
        st.builds(lambda forged, extra: {ATTEMPTS_HEADER: forged, REASON_HEADER: "forged", **extra},
                  st.sampled_from(ATTEMPT_FORGERIES),
                  st.dictionaries(st.text(min_size=1, max_size=20), HEADER_VALUES, max_size=2)),
    ))
    message_id = draw(st.one_of(st.none(), st.just(""), st.uuids().map(str), st.text(max_size=60),
                                st.just("m" * 255)))
    return {"content_type": draw(st.sampled_from(CONTENT_TYPES)), "headers": headers, "message_id": message_id}


# --- bodies --------------------------------------------------------------------------------------------------------

def envelope_of(event: EventData, event_id: uuid.UUID, sequence: int = 1) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(make_envelope(event, event_id=event_id, sequence=sequence).to_json_bytes())
    return body


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")


@st.composite
def not_an_envelope(draw: st.DrawFn, inbox: Inbox) -> tuple[str, bytes]:
    """Bodies that are not a CloudEvent at all."""
    valid = _dumps(envelope_of(draw(st.sampled_from(inbox.samples())), draw(st.uuids())))
    chosen: tuple[str, bytes] = draw(st.one_of(
        st.binary(max_size=300).map(lambda body: ("random bytes", body)),
        st.text(max_size=200).map(lambda text: ("text", text.encode("utf-8", "surrogatepass"))),
        GARBAGE.map(lambda garbage: ("json that is no envelope", _dumps(garbage["$garbage"]))),
        st.integers(1, len(valid) - 1).map(lambda cut: ("truncated envelope", valid[:cut])),
        st.just(("deeply nested json", b"[" * 50_000 + b"]" * 50_000)),
        st.just(("deeply nested data", valid.replace(b'"data":{', b'"data":{"x":' + b"[" * 50_000 + b"]" * 50_000
                                                     + b",", 1))),
        st.just(("xml", b"<?xml version='1.0'?><event><type>secondopinion.intake.CaseAccepted.v1</type></event>")),
        st.just(("utf-16 envelope", valid.decode().encode("utf-16"))),
        st.just(("huge string", _dumps("x" * HUGE))),
        st.just(("empty body", b"")),
    ))
    return chosen


REQUIRED_ENVELOPE = ("id", "source", "type", "subject", "time", "dataschema", "data", "sequence", "correlationid")
WRONG_ENVELOPE_VALUES: dict[str, tuple[Any, ...]] = {
    "specversion": ("0.3", "2.0", 1.0, None),
    "id": ("not-a-uuid", 12345, "' OR '1'='1", None, ""),
    "source": ("/evil/../../intake", "/secondopinion/INTAKE", "", 5, "/secondopinion/intake\n"),
    "type": ("secondopinion.intake.CaseAccepted", "intake.CaseAccepted.v1", "", "secondopinion.intake.caseAccepted.v1",
             ["secondopinion.intake.CaseAccepted.v1"], "secondopinion.intake.CaseAccepted.v1\x00"),
    "subject": ("", None, 42, ["x"]),
    "time": ("yesterday", "2026-02-30T10:00:00Z", "2026-12-01T10:00:00", "0001-01-01T00:00:00+14:00",
             "9999-12-31T23:59:59-14:00", "", None, [2026]),
    "dataschema": (None, 3, {"$ref": "x"}),
    "data": ([], "data", None, 5, True),
    "sequence": (0, -1, "abc", 1.5, None, "1e3"),
    "correlationid": ("", None, {}),
    "traceparent": (5, {"x": 1}),
    "actorid": (7, []),
}


@st.composite
def broken_envelope(draw: st.DrawFn, inbox: Inbox) -> tuple[str, bytes]:
    """An otherwise good envelope with one attribute missing or of a wrong type or value."""
    body = envelope_of(draw(st.sampled_from(inbox.samples())), draw(st.uuids()))
    if draw(st.booleans()):
        attribute = draw(st.sampled_from(REQUIRED_ENVELOPE))
        del body[attribute]
        return f"envelope without {attribute}", _dumps(body)
    attribute = draw(st.sampled_from(sorted(WRONG_ENVELOPE_VALUES)))
    wrong = st.sampled_from(WRONG_ENVELOPE_VALUES[attribute])
    # Any object is a well-formed `data` (the event's schema then decides), so garbage only elsewhere.
    body[attribute] = draw(wrong if attribute == "data" else wrong | GARBAGE)
    return f"envelope with a bad {attribute}", _dumps(body)


@st.composite
def unknown_type(draw: st.DrawFn, inbox: Inbox) -> tuple[str, bytes, str, str]:
    """A well-formed envelope of a type or version this inbox has no handler for."""
    event = draw(st.sampled_from(inbox.samples()))
    body = envelope_of(event, draw(st.uuids()))
    choices = [event_type(event.SERVICE, event.NAME, version) for version in (event.VERSION + 1, 99, 0)]
    choices += [event_type(event.SERVICE, "NoSuchEvent", 1), event_type("nosuchservice", event.NAME, 1),
                *(other.type_name() for other in inbox.unhandled())]
    body["type"] = draw(st.sampled_from([choice for choice in choices if choice not in inbox.handled]))
    return f"type {body['type']}", _dumps(body), body["id"], body["type"]


def _resolve(schema: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return _resolve(definitions[schema["$ref"].rsplit("/", 1)[-1]], definitions)
    return schema


def _alternatives(schema: dict[str, Any], definitions: dict[str, Any]) -> list[dict[str, Any]]:
    """The non-null branches of a property's schema (an optional field is `anyOf [X, null]`)."""
    branches = schema.get("anyOf", [schema])
    return [_resolve(branch, definitions) for branch in branches if branch.get("type") != "null"]


def invalid_values(schema: dict[str, Any], definitions: dict[str, Any]) -> list[Any]:
    """Values no branch of the property's schema accepts (as pydantic validates it, lax mode included)."""
    branches = _alternatives(schema, definitions)
    values: list[Any] = []
    for branch in branches:
        kind, pattern = branch.get("type"), branch.get("pattern")
        if "enum" in branch:
            values += ["teleport", str(branch["enum"][0]).upper() + "_", *INJECTIONS[:2], f"{branch['enum'][0]}\x00"]
        elif "const" in branch:
            values += [f"{branch['const']}X", ""]
        elif branch.get("format") == "uuid":
            values += ["not-a-uuid", 12345, "' OR '1'='1", "", "0" * 33]
        elif branch.get("format") == "date":
            values += ["2026-02-30", "yesterday", "", "99999-01-01"]
        elif branch.get("format") == "date-time":
            values += ["2026-02-30T10:00:00Z", "next tuesday", "", "2026-12-01T25:00:00Z"]
        elif kind == "string" and pattern:
            values += [*INJECTIONS, "", "x" * HUGE, "cardiology\x00"]
        elif kind == "string":
            if branch.get("minLength"):
                values.append("")
            if "maxLength" in branch:
                values += ["x" * (branch["maxLength"] + 1), "x" * HUGE]
        elif kind == "integer":
            values += ["abc", 1.5, "1e3"]
            low = branch.get("exclusiveMinimum", branch.get("minimum", None))
            if low is not None:
                values += [low - 1, -(2**70)]
            if "maximum" in branch:
                values.append(branch["maximum"] + 1)
        elif kind == "boolean":
            values += ["maybe", 2, [True]]
        elif kind == "array":
            values += ["not a list", {"0": 1}]
            if branch.get("minItems"):
                values.append([])
    return values


@st.composite
def invalid_data(draw: st.DrawFn, inbox: Inbox) -> tuple[str, bytes, str]:
    """A good envelope of a handled type whose data breaks the event's schema in one field."""
    event = draw(st.sampled_from(inbox.samples()))
    body = envelope_of(event, draw(st.uuids()))
    schema = type(event).model_json_schema()
    definitions = schema.get("$defs", {})
    field = draw(st.sampled_from(sorted(schema["properties"])))
    how = draw(st.sampled_from(["missing", "invalid", "garbage"])
               if field in schema.get("required", []) else st.sampled_from(["invalid", "garbage"]))
    if how == "missing":
        del body["data"][field]
    elif how == "garbage":
        body["data"][field] = draw(GARBAGE)
    else:
        candidates = invalid_values(schema["properties"][field], definitions)
        if not candidates:
            body["data"][field] = draw(GARBAGE)
        else:
            body["data"][field] = draw(st.sampled_from(candidates))
    return f"{event.NAME} with {how} {field}", _dumps(body), body["id"]


@st.composite
def malformed(draw: st.DrawFn, inbox: Inbox) -> Hostile:
    which = draw(st.sampled_from(["not an envelope", "broken envelope", "unknown type", "invalid data"]))
    envelope_id = None
    if which == "not an envelope":
        label, body = draw(not_an_envelope(inbox))
        expected, routing = INVALID_ENVELOPE, draw(inbox.routing_for(draw(st.sampled_from(sorted(inbox.handled)))))
    elif which == "broken envelope":
        label, body = draw(broken_envelope(inbox))
        expected, routing = INVALID_ENVELOPE, draw(inbox.routing_for(draw(st.sampled_from(sorted(inbox.handled)))))
    elif which == "unknown type":
        label, body, envelope_id, type_name = draw(unknown_type(inbox))
        expected, routing = UNKNOWN_TYPE, draw(inbox.routing_for(type_name))
    else:
        label, body, envelope_id = draw(invalid_data(inbox))
        expected = SCHEMA_INVALID
        routing = draw(inbox.routing_for(json.loads(body)["type"]))
    return Hostile(label=label, body=body, expected_reason=expected, envelope_id=envelope_id, routing_key=routing,
                   **draw(amqp_properties()))


def once_stuck(inbox: Inbox) -> list[Hostile]:
    """Messages that each left a consumer holding an unacked delivery for good, before eventkit was fixed: a body
    that is not the JSON or text its content type claims, a junk attempt count, a time that overflows in UTC."""
    overflowing = envelope_of(inbox.samples()[0], uuid.UUID(int=1))
    overflowing["time"] = "0001-01-01T00:00:00+14:00"
    return [
        Hostile("not the json it claims", b"{not json", INVALID_ENVELOPE, content_type="application/json"),
        Hostile("not the text it claims", b"\xff\xfe", INVALID_ENVELOPE, content_type="text/plain"),
        Hostile("junk attempt count", b"junk", INVALID_ENVELOPE, headers={ATTEMPTS_HEADER: "abc"}),
        Hostile("time overflowing in UTC", _dumps(overflowing), INVALID_ENVELOPE, envelope_id=overflowing["id"]),
    ]


# --- in-contract values --------------------------------------------------------------------------------------------

def legal_but_nasty(schema: dict[str, Any], definitions: dict[str, Any]) -> list[Any]:
    """Values the property's schema accepts that are still unpleasant to handle."""
    branches = _alternatives(schema, definitions)
    values: list[Any] = []
    for branch in branches:
        kind = branch.get("type")
        if "enum" in branch or "const" in branch or branch.get("pattern"):
            continue
        if branch.get("format") == "uuid":
            values += ["00000000-0000-0000-0000-000000000000", "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF"]
        elif branch.get("format") == "date":
            values += ["0001-01-01", "9999-12-31"]
        elif branch.get("format") == "date-time":
            values += ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-12-01T10:00:00",
                       "0001-01-01T00:00:00+14:00", "2026-12-01T10:00:00.999999+14:00"]
        elif kind == "string":
            limit = branch.get("maxLength", HUGE)
            values += [text for text in NASTY_TEXT if branch.get("minLength", 0) <= len(text) <= limit]
            values.append("x" * limit)
        elif kind == "integer" and "maximum" not in branch:
            values += [2**31, 2**63, 2**70]
    return values


NASTY_ENVELOPE: dict[str, tuple[Any, ...]] = {
    "subject": ("s" * HUGE, "'; DROP TABLE events; --", "a\x00b"),
    "source": ("/secondopinion/" + "a" * HUGE, "/secondopinion/nosuchservice"),
    "sequence": (2**31, 2**63, 2**70),
    "time": ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"),
    "actorid": NASTY_TEXT,
    "actorrole": ("root", "auditor", "a\x00b"),
    "causationid": ("c" * HUGE, "a\x00b"),
    "traceparent": ("00-zzzz-yyyy-01", "not a traceparent", "00-" + "0" * 32 + "-" + "0" * 16 + "-00"),
    "correlationid": ("c" * HUGE, "a\x00b"),
}


@st.composite
def in_contract(draw: st.DrawFn, inbox: Inbox) -> Hostile:
    """A valid envelope of a handled type, with one legal but nasty value in its attributes or data, or unknown
    extra fields in its data (ignored by the lenient parse newer minor versions need)."""
    event = draw(st.sampled_from(inbox.samples()))
    body = envelope_of(event, draw(st.uuids()), sequence=draw(st.integers(1, 1000)))
    schema = type(event).model_json_schema()
    definitions = schema.get("$defs", {})
    nasty_fields = {name: values for name, spec in schema["properties"].items()
                    if (values := legal_but_nasty(spec, definitions))}
    where = draw(st.sampled_from(["data", "envelope", "extra fields"]))
    if where == "data" and nasty_fields:
        field = draw(st.sampled_from(sorted(nasty_fields)))
        body["data"][field] = draw(st.sampled_from(nasty_fields[field]))
        label = f"{event.NAME} with a nasty {field}"
    elif where == "extra fields":
        body["data"].update(draw(st.dictionaries(st.text(min_size=1, max_size=20).filter(
            lambda key: key not in schema["properties"]), GARBAGE, min_size=1, max_size=3)))
        label = f"{event.NAME} with unknown extra fields"
    else:
        attribute = draw(st.sampled_from(sorted(NASTY_ENVELOPE)))
        body[attribute] = draw(st.sampled_from(NASTY_ENVELOPE[attribute]))
        label = f"{event.NAME} with a nasty {attribute}"
    return Hostile(label=label, body=_dumps(body), expected_reason=None, envelope_id=body["id"],
                   routing_key=draw(inbox.routing_for(body["type"])), **draw(amqp_properties()))

