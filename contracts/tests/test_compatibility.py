"""A published schema stays compatible with its last release, and every kind of break is named."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from secondopinion_contracts.compatibility import RELEASED_DIR, check, last_release
from secondopinion_contracts.schemas import SCHEMA_DIR


def test_published_schemas_are_compatible_with_the_last_release() -> None:
    assert last_release() is not None, "no release baseline in contracts"
    assert check() == {}


@pytest.fixture
def workspace(tmp_path: Path) -> tuple[Path, Path]:
    published = tmp_path / "published"
    released = tmp_path / "released"
    shutil.copytree(SCHEMA_DIR, published)
    release = last_release()
    assert release is not None
    shutil.copytree(release, released / release.name)
    return published, released


def edit(published: Path, relative: str, change: Any) -> None:
    target = published / relative
    schema = json.loads(target.read_text())
    change(schema)
    target.write_text(json.dumps(schema))


def test_removing_a_field_names_the_field(workspace: tuple[Path, Path]) -> None:
    published, released = workspace
    edit(published, "intake/CaseAccepted.v1.json", lambda s: s["properties"].pop("screened_by"))
    assert check(published, released) == {"intake/CaseAccepted.v1.json": ["field `screened_by` was removed"]}


def test_retyping_a_field_names_the_field(workspace: tuple[Path, Path]) -> None:
    published, released = workspace
    edit(published, "billing/InvoiceIssued.v1.json", lambda s: s["properties"]["total"].update(type="string"))
    problems = check(published, released)["billing/InvoiceIssued.v1.json"]
    assert problems == ["field `total` changed type from ['integer'] to ['string']"]


def test_adding_a_required_field_names_the_field(workspace: tuple[Path, Path]) -> None:
    published, released = workspace

    def add_required(schema: dict[str, Any]) -> None:
        schema["properties"]["ward"] = {"type": "string"}
        schema["required"].append("ward")

    edit(published, "scheduling/SlotConfirmed.v1.json", add_required)
    assert check(published, released) == {"scheduling/SlotConfirmed.v1.json": ["field `ward` is newly required"]}


def test_adding_an_optional_field_is_compatible(workspace: tuple[Path, Path]) -> None:
    published, released = workspace
    edit(published, "scheduling/SlotConfirmed.v1.json", lambda s: s["properties"].update(ward={"type": "string"}))
    assert check(published, released) == {}


def test_removing_a_code_or_an_event_version_is_breaking(workspace: tuple[Path, Path]) -> None:
    published, released = workspace

    def drop_code(schema: dict[str, Any]) -> None:
        schema["$defs"]["RefusalReason"]["enum"].remove("patient_deceased")

    edit(published, "intake/CaseDeclined.v1.json", drop_code)
    (published / "reporting" / "CaseClosed.v1.json").unlink()
    report = check(published, released)
    assert report["intake/CaseDeclined.v1.json"] == ["field `reasons` no longer allows ['patient_deceased']"]
    assert report["reporting/CaseClosed.v1.json"] == [
        "event version reporting/CaseClosed.v1.json was released and is no longer published"]


def test_releases_live_in_the_contracts_package() -> None:
    assert RELEASED_DIR.parent.name == "secondopinion_contracts"


def test_the_envelope_is_held_to_the_same_rules(workspace: tuple[Path, Path]) -> None:
    published, released = workspace
    edit(published, "envelope.json", lambda s: s["properties"].pop("correlationid"))
    assert check(published, released) == {"envelope.json": ["field `correlationid` was removed"]}


def test_what_was_deprecated_may_go_after_its_sunset_and_not_before(workspace: tuple[Path, Path]) -> None:
    published, released = workspace
    edit(published, "envelope.json", lambda s: s["properties"].pop("sequence"))
    (published / "intake" / "CaseDeclined.v1.json").unlink()
    before = check(published, released, today=date(2027, 3, 31))
    assert before == {"envelope.json": ["field `sequence` was removed"], "intake/CaseDeclined.v1.json": [
        "event version intake/CaseDeclined.v1.json was released and is no longer published"]}
    assert check(published, released, today=date(2027, 4, 1)) == {"envelope.json": ["field `sequence` was removed"]}
    assert check(published, released, today=date(2027, 7, 1)) == {}
