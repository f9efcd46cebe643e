"""The department catalogue: codes the events can carry, names the desk reads, and errors that say which."""

from __future__ import annotations

import re

import pytest
from pydantic import TypeAdapter, ValidationError

from secondopinion_contracts.codes import Department
from secondopinion_contracts.departments import CATALOGUE, DepartmentCode, code_named
from secondopinion_contracts.events.intake import DEPARTMENT_PATTERN


def test_every_code_is_an_event_code_with_both_names() -> None:
    for code, department in CATALOGUE.items():
        assert re.fullmatch(DEPARTMENT_PATTERN, code), code
        assert department.code == code
        assert department.name_ja
        assert department.name_en


def test_the_catalogue_names_every_published_code_and_no_other() -> None:
    assert list(CATALOGUE) == [department.value for department in Department]


def test_a_name_in_either_language_finds_its_code() -> None:
    assert code_named("循環器内科") == "cardiology"
    assert code_named(" cardiology ") == "cardiology"
    assert code_named("Radiation Oncology") == "radiation_oncology"
    assert code_named("astrology") is None


def test_a_department_that_is_not_a_code_is_refused_with_the_codes() -> None:
    codes = TypeAdapter(DepartmentCode)
    assert codes.validate_python("astrology") == "astrology", "well formed: whether it is offered is intake's rule"
    with pytest.raises(ValidationError) as refused:
        codes.validate_python("小児科")
    [error] = refused.value.errors()
    assert error["type"] == "department_code"
    assert error["msg"].startswith("'小児科' is not a department code; for 小児科 use 'pediatrics'. Department codes: ")
    assert error["ctx"]["meant"] == "pediatrics"
