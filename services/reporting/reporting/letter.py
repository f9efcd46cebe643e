"""The second-opinion report (セカンドオピニオン報告書) for the attending physician: handed to the patient after an
in-person consultation or posted to the physician's institution. Pure: the final report's facts, the names and
addresses read from intake for this print only, and the hospital's identity in, PDF bytes out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

from eventkit.crypto import MASK
from eventkit.documents import (
    MODE_NAMES_JA,
    Document,
    Fields,
    Heading,
    HospitalSettings,
    Lines,
    department_ja,
    ja_date,
    render,
)
from eventkit.errors import NotFound
from reporting.domain import OpinionReport, ReportStatus


@dataclass(frozen=True)
class LetterFacts:
    case_id: UUID
    report_id: UUID
    draft_number: int
    physician_id: str
    department: str
    mode: str
    consulted_on: date
    finalized_on: date
    # None once the case's personal data was erased (the text went with it).
    opinion: str | None

    @classmethod
    def of(cls, case_id: UUID, report: OpinionReport, department: str | None, opinion: str | None) -> LetterFacts:
        """The letter of a final report; 404 with the reason while there is none to print."""
        if report.status is ReportStatus.NOT_STARTED:
            raise NotFound(f"no report has been drafted for case {case_id}")
        if report.status is ReportStatus.DRAFTED:
            raise NotFound(f"the report of case {case_id} is a draft: it can be printed once it is finalized")
        assert report.report_id is not None
        assert report.physician_id is not None
        assert report.consultation_mode is not None
        assert report.consulted_on is not None
        assert report.finalized_on is not None
        return cls(case_id=case_id, report_id=report.report_id, draft_number=report.draft_number,
                   physician_id=report.physician_id, department=department or "", mode=report.consultation_mode.value,
                   consulted_on=report.consulted_on, finalized_on=report.finalized_on, opinion=opinion)

    @property
    def filename(self) -> str:
        return f"second-opinion-report-{self.case_id}.pdf"

    @property
    def reference(self) -> str:
        return f"{self.report_id}:{self.draft_number}"


def _birth_date(value: str | None) -> str:
    if not value or value == MASK:
        return value or ""
    return ja_date(date.fromisoformat(value)).split("（")[0]


def _addressee(person: Mapping[str, Any]) -> list[str]:
    lines = [f"〒{person['attending_postal_code']}"] if person.get("attending_postal_code") else []
    lines += [person["attending_address"]] if person.get("attending_address") else []
    return [*lines, str(person["attending_institution"]), f"{person['attending_name']} 先生 御侍史"]


def letter_document(facts: LetterFacts, person: Mapping[str, Any], hospital: HospitalSettings) -> Document:
    physician = hospital.physician_name(facts.physician_id)
    department = department_ja(facts.department)
    opinion = (facts.opinion if facts.opinion is not None else MASK).splitlines() or [""]
    return Document(
        title="セカンドオピニオン報告書", title_english="Second-opinion report for the attending physician",
        reference=f"second-opinion-report-{facts.report_id}", issued_on=facts.finalized_on,
        addressee=_addressee(person),
        numbers=[*([("受付番号", str(person["case_number"]))] if person.get("case_number") else []),
                 ("報告書番号", str(facts.report_id).split("-")[0].upper())],
        blocks=[
            Lines(["平素より大変お世話になっております。",
                   "ご紹介いただきました患者さんについて、当院セカンドオピニオン外来での相談の結果を下記のとおりご報告いたします。"]),
            Heading("患者さん", "Patient"),
            Fields([("氏名\nName", f"{person['patient_name']} 様"),
                    ("生年月日\nDate of birth", _birth_date(person.get("patient_birth_date")))]),
            Heading("ご相談", "Consultation"),
            Fields([("相談日\nDate", ja_date(facts.consulted_on)),
                    ("相談方法\nMode", MODE_NAMES_JA.get(facts.mode, facts.mode)),
                    ("診療科\nDepartment", department),
                    ("担当医\nSecond-opinion physician", physician)]),
            Heading("意見", "Opinion"),
            Lines(opinion),
            Lines([f"報告日 {ja_date(facts.finalized_on)}", f"{hospital.name} {department}", f"担当医 {physician}"],
                  right=True),
        ])


def render_letter(facts: LetterFacts, person: Mapping[str, Any], hospital: HospitalSettings) -> bytes:
    return render(letter_document(facts, person, hospital), hospital)
