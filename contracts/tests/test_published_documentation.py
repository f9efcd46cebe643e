"""What an integration team reads in the published files: every property described, dates with their time
zone, closed code sets as enums, deprecations machine-readable, and an example of every message that
validates against its schemas and parses back into the models."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from secondopinion_contracts import ALL_EVENTS, CloudEvent, event_class
from secondopinion_contracts.codes import Department
from secondopinion_contracts.envelope import SEQUENCE_SUNSET
from secondopinion_contracts.events.intake import CaseAccepted, CaseDeclined, CaseDeclinedV2
from secondopinion_contracts.examples import DATA, EXAMPLES
from secondopinion_contracts.schemas import SCHEMA_DIR, example_path, rendered


def published() -> dict[str, Any]:
    return {str(path): json.loads(text) for path, text in rendered().items()}


def properties(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (path, schema) of a property anywhere in a schema or document."""
    if isinstance(node, dict):
        for name, schema in (node.get("properties") or {}).items():
            yield f"{where}.{name}", schema
        for key, value in node.items():
            if key != "examples":
                yield from properties(value, f"{where}/{key}")
    elif isinstance(node, list):
        for item in node:
            yield from properties(item, where)


def test_every_property_of_every_published_file_has_a_description() -> None:
    undescribed = [f"{name}{where}" for name, schema in published().items() if not name.startswith("examples")
                   for where, prop in properties(schema) if not prop.get("description")]
    assert undescribed == []


def test_the_check_finds_a_property_without_a_description() -> None:
    schema = {"properties": {"a": {"description": "x", "properties": {"b": {"type": "string"}}}}}
    assert [where for where, prop in properties(schema) if not prop.get("description")] == ["/properties/a.b"]


def test_dates_say_their_time_zone() -> None:
    for name, schema in published().items():
        for where, prop in properties(schema):
            kinds = {prop.get("format")} | {option.get("format") for option in prop.get("anyOf", [])}
            if "date" in kinds:
                assert "Asia/Tokyo" in prop["description"], f"{name}{where}"
            if "date-time" in kinds:
                assert "UTC" in prop["description"], f"{name}{where}"


def test_department_codes_are_a_closed_set_where_a_case_was_accepted() -> None:
    schema = CaseAccepted.model_json_schema()
    assert schema["$defs"]["Department"]["enum"] == [code.value for code in Department]
    with pytest.raises(ValueError, match="department"):
        CaseAccepted.model_validate({"case_id": str(EXAMPLES[CaseAccepted].subject), "department": "astrology",
                                     "mode": "online", "screened_by": "dr-1"})


def test_the_envelope_requires_what_cloudevents_requires() -> None:
    schema = published()["envelope.json"]
    assert {"specversion", "id", "source", "type"} <= set(schema["required"])
    example = json.loads(EXAMPLES[CaseAccepted].to_json_bytes())
    jsonschema.validate(example, schema)
    del example["specversion"]
    with pytest.raises(jsonschema.ValidationError, match="specversion"):
        jsonschema.validate(example, schema)


def test_deprecations_are_machine_readable() -> None:
    files = published()
    v1 = files["intake/CaseDeclined.v1.json"]
    assert v1["deprecated"] is True
    assert v1["x-sunset"] == CaseDeclined.SUNSET
    assert "deprecated" not in files["intake/CaseDeclined.v2.json"]
    message = files["asyncapi.json"]["components"]["messages"]["intake_CaseDeclined_v1"]
    assert message["x-sunset"] == CaseDeclined.SUNSET
    sequence = files["envelope.json"]["properties"]["sequence"]
    assert sequence["deprecated"] is True
    assert sequence["x-sunset"] == SEQUENCE_SUNSET
    assert sequence["x-replaced-by"] == "streamversion"


def test_every_event_version_has_an_example_valid_in_its_schemas_and_models() -> None:
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    envelope_schema = json.loads((SCHEMA_DIR / "envelope.json").read_text())
    assert set(EXAMPLES) == set(ALL_EVENTS)
    for event in ALL_EVENTS:
        example = json.loads((SCHEMA_DIR / example_path(event)).read_text())
        data_schema = json.loads((SCHEMA_DIR / event.SERVICE / f"{event.NAME}.v{event.VERSION}.json").read_text())
        jsonschema.Draft202012Validator(envelope_schema, format_checker=checker).validate(example)
        jsonschema.Draft202012Validator(data_schema, format_checker=checker).validate(example["data"])
        envelope = CloudEvent.model_validate(example)
        assert event_class(envelope.type) is event
        assert event.model_validate(envelope.data) in DATA
        assert envelope.sequence == envelope.streamversion


def test_the_deprecated_example_names_its_successor() -> None:
    assert EXAMPLES[CaseDeclined].supersededby == CaseDeclinedV2.type_name()
    assert all(envelope.supersededby is None for event, envelope in EXAMPLES.items() if event is not CaseDeclined)


def test_the_stream_version_reads_envelopes_from_before_and_after_1_1() -> None:
    current = json.loads(EXAMPLES[CaseAccepted].to_json_bytes())
    assert CloudEvent.model_validate({**current, "sequence": 7, "streamversion": 7}).stream_version == 7
    del current["streamversion"]
    assert CloudEvent.model_validate({**current, "sequence": 5}).stream_version == 5
