"""docs/subscribing.md stays true: its example message is a published example, valid in the schemas; the broker
addresses are those of the AsyncAPI servers; the deprecations and sunsets are the models' own."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema

from secondopinion_contracts.envelope import SEQUENCE_SUNSET
from secondopinion_contracts.events.intake import CaseDeclined
from secondopinion_contracts.schemas import SCHEMA_DIR

DOC = (Path(__file__).resolve().parents[2] / "docs" / "subscribing.md").read_text()


def test_the_example_message_is_a_published_example_and_valid() -> None:
    blocks = re.findall(r"```json\n(.*?)```", DOC, flags=re.DOTALL)
    assert blocks, "the doc shows a message"
    for block in blocks:
        message = json.loads(block)
        _, service, name, version = message["type"].split(".")
        assert message == json.loads((SCHEMA_DIR / "examples" / service / f"{name}.{version}.json").read_text())
        jsonschema.validate(message, json.loads((SCHEMA_DIR / "envelope.json").read_text()))
        jsonschema.validate(message["data"], json.loads((SCHEMA_DIR / service / f"{name}.{version}.json").read_text()))


def test_the_broker_addresses_are_the_asyncapi_servers() -> None:
    servers = json.loads((SCHEMA_DIR / "asyncapi.json").read_text())["servers"]
    for server in servers.values():
        assert f"`{server['host']}`" in DOC


def test_the_deprecations_are_the_models_own() -> None:
    assert f"| `intake.CaseDeclined.v1` | {CaseDeclined.SUNSET} |" in DOC
    assert f"| envelope attribute `sequence` (an integer) | {SEQUENCE_SUNSET} |" in DOC
