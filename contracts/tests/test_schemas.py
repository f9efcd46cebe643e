"""The checked-in JSON Schemas are exactly what the models produce, and events validate against them."""

from __future__ import annotations

import json
import uuid
from datetime import date

import jsonschema

from secondopinion_contracts import ALL_EVENTS, CloudEvent
from secondopinion_contracts.events.intake import CaseDeclined
from secondopinion_contracts.schemas import SCHEMA_DIR, rendered, stale


def test_checked_in_schemas_match_the_models() -> None:
    problems = stale()
    assert problems == [], f"run `make contracts` and commit: stale schemas {problems}"


def test_every_event_version_has_a_schema_file() -> None:
    names = {str(path) for path in rendered()}
    for event in ALL_EVENTS:
        assert f"{event.SERVICE}/{event.NAME}.v{event.VERSION}.json" in names


def test_a_changed_model_is_detected(tmp_path: object) -> None:
    from pathlib import Path

    directory = Path(str(tmp_path))
    for relative, text in rendered().items():
        (directory / relative).parent.mkdir(parents=True, exist_ok=True)
        (directory / relative).write_text(text)
    target = directory / "intake" / "CaseDeclined.v1.json"
    schema = json.loads(target.read_text())
    del schema["properties"]["declined_by"]
    target.write_text(json.dumps(schema))
    assert stale(directory) == ["intake/CaseDeclined.v1.json"]


def test_an_event_validates_against_its_checked_in_schema() -> None:
    event = CaseDeclined(case_id=uuid.uuid4(), reasons=["patient_deceased"], declined_by="intake")
    schema = json.loads((SCHEMA_DIR / "intake" / "CaseDeclined.v1.json").read_text())
    jsonschema.validate(event.model_dump(mode="json"), schema)
    bad = {**event.model_dump(mode="json"), "reasons": ["not_a_reason"]}
    try:
        jsonschema.validate(bad, schema)
    except jsonschema.ValidationError:
        pass
    else:
        raise AssertionError("an unknown reason code passed the schema")


def test_the_envelope_rejects_a_wrong_type_pattern() -> None:
    envelope = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/secondopinion/intake",
                "type": "intake.CaseDeclined", "subject": "x", "time": "2026-12-01T00:00:00Z",
                "dataschema": "x", "data": {}, "sequence": 1, "correlationid": "x"}
    try:
        CloudEvent.model_validate(envelope)
    except ValueError:
        pass
    else:
        raise AssertionError("an envelope with a malformed type was accepted")
    envelope["type"] = "secondopinion.intake.CaseDeclined.v1"
    assert CloudEvent.model_validate(envelope).routing_key == "intake.CaseDeclined.v1"
    assert date(2026, 12, 1) == CloudEvent.model_validate(envelope).time.date()


def test_the_asyncapi_document_has_a_channel_per_event_version_on_the_exchange() -> None:
    document = json.loads((SCHEMA_DIR / "asyncapi.json").read_text())
    assert document["asyncapi"] == "3.0.0"
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == {event.routing_key() for event in ALL_EVENTS}
    for channel in document["channels"].values():
        assert channel["bindings"]["amqp"]["exchange"]["name"] == "secondopinion.events"
    message = document["components"]["messages"]["intake_CaseDeclined_v1"]
    assert message["contentType"] == "application/cloudevents+json"
    assert message["payload"]["properties"]["type"]["const"] == "secondopinion.intake.CaseDeclined.v1"
    assert "reasons" in message["payload"]["properties"]["data"]["properties"]
    operations = document["operations"].values()
    assert all(operation["action"] == "send" for operation in operations)
