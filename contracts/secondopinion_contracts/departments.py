"""The hospital's department codes (the `department` of the events), with their Japanese and English names.

Which of them take second-opinion requests today is intake's setting (INTAKE_DEPARTMENTS); every code it
names must be here, so the desk always sees a name beside a code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from secondopinion_contracts.events.intake import DEPARTMENT_PATTERN


@dataclass(frozen=True)
class Department:
    code: str
    name_ja: str
    name_en: str


CATALOGUE: dict[str, Department] = {department.code: department for department in (
    Department("cardiology", "循環器内科", "Cardiology"),
    Department("cardiovascular_surgery", "心臓血管外科", "Cardiovascular Surgery"),
    Department("gastroenterology", "消化器内科", "Gastroenterology"),
    Department("gastrointestinal_surgery", "消化器外科", "Gastrointestinal Surgery"),
    Department("hepatology", "肝臓内科", "Hepatology"),
    Department("nephrology", "腎臓内科", "Nephrology"),
    Department("hematology", "血液内科", "Hematology"),
    Department("neurology", "脳神経内科", "Neurology"),
    Department("neurosurgery", "脳神経外科", "Neurosurgery"),
    Department("oncology", "腫瘍内科", "Medical Oncology"),
    Department("radiation_oncology", "放射線治療科", "Radiation Oncology"),
    Department("pediatrics", "小児科", "Pediatrics"),
    Department("dermatology", "皮膚科", "Dermatology"),
    Department("rheumatology", "膠原病・リウマチ内科", "Rheumatology"),
    Department("infectious_diseases", "感染症内科", "Infectious Diseases"),
    Department("otolaryngology", "耳鼻咽喉科", "Otolaryngology"),
    Department("transplant_surgery", "移植外科", "Transplant Surgery"),
    Department("plastic_surgery", "形成外科", "Plastic Surgery"),
    Department("endocrinology", "内分泌・代謝内科", "Endocrinology and Metabolism"),
    Department("respiratory_medicine", "呼吸器内科", "Respiratory Medicine"),
    Department("urology", "泌尿器科", "Urology"),
    Department("obstetrics_gynecology", "産婦人科", "Obstetrics and Gynecology"),
)}

_CODE = re.compile(DEPARTMENT_PATTERN)


def code_named(name: str) -> str | None:
    """The code of the department called `name` (Japanese or English, any case), if there is one."""
    wanted = name.strip().casefold()
    return next((d.code for d in CATALOGUE.values() if wanted in (d.name_ja, d.name_en.casefold())), None)


def department_code(value: str) -> str:
    """A well-formed code, or an error that names the codes (and the code meant, when a name was given)."""
    if _CODE.fullmatch(value):
        return value
    meant = code_named(value)
    hint = f"; for {value} use '{meant}'" if meant else ""
    raise PydanticCustomError(
        "department_code", "'{value}' is not a department code{hint}. Department codes: {codes} "
        "(GET /departments lists them with their names)",
        {"value": value, "hint": hint, "codes": ", ".join(CATALOGUE), "meant": meant})


DepartmentCode = Annotated[str, AfterValidator(department_code)]
