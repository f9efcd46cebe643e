"""The appointment slip (予約票) posted to the patient once an in-person date is fixed, and again, marked as
replacing the earlier one, after a reschedule. Pure: the appointment's facts, the patient's name and address
(read from intake for this print only) and the hospital's identity in, PDF bytes out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from eventkit.documents import (
    MODE_NAMES_JA,
    Document,
    Fields,
    Heading,
    HospitalSettings,
    Lines,
    department_ja,
    ja_time_range,
    render,
    yen,
)
from eventkit.errors import NotFound


@dataclass(frozen=True)
class SlipFacts:
    appointment_id: UUID
    case_id: UUID
    department: str
    physician_id: str
    start: datetime
    end: datetime
    issued_on: date
    replaces_earlier: bool

    @classmethod
    def from_view(cls, view: Mapping[str, Any]) -> SlipFacts:
        """The slip of an appointment as scheduling shows it; 404 with the reason when there is none to print."""
        appointment_id = view["appointment_id"]
        if view["mode"] != "in_person":
            raise NotFound(f"appointment {appointment_id} is online: it has no appointment slip (the patient books on "
                           "CLINICS)")
        if view["status"] == "cancelled":
            raise NotFound(f"appointment {appointment_id} was cancelled: its appointment slip is void")
        if view["slip_issued_on"] is None:
            raise NotFound(f"no appointment slip has been issued for appointment {appointment_id}")
        return cls(appointment_id=appointment_id, case_id=view["case_id"], department=view["department"],
                   physician_id=view["physician_id"], start=view["start"], end=view["end"],
                   issued_on=view["slip_issued_on"], replaces_earlier=bool(view["reschedules"]))

    @property
    def filename(self) -> str:
        return f"appointment-slip-{self.appointment_id}.pdf"

    @property
    def reference(self) -> str:
        """One slip per appointment and issue date (a reschedule issues a new one)."""
        return f"{self.appointment_id}:{self.issued_on.isoformat()}"


def _addressee(person: Mapping[str, Any]) -> list[str]:
    lines = [f"〒{person['patient_postal_code']}"] if person.get("patient_postal_code") else []
    lines += [person["patient_address"]] if person.get("patient_address") else []
    return [*lines, f"{person['patient_name']} 様"]


def _case_number(facts: SlipFacts, person: Mapping[str, Any]) -> str:
    """The case number intake gave the case (SO-2026-00123), which the patient quotes when calling the desk; the
    case id's first part only for a case intake has no number for."""
    number = person.get("case_number")
    return str(number) if number else str(facts.case_id).split("-")[0].upper()


MATERIALS = {"referral_letter": "主治医の診療情報提供書（紹介状）", "test_results": "検査資料（CD-R 可）"}


def _materials(received: Sequence[str]) -> str:
    """The referral letter and test materials, unless intake has received them by post already."""
    missing = [name for kind, name in MATERIALS.items() if kind not in received]
    if not missing:
        return "・主治医の診療情報提供書（紹介状）と検査資料は郵送で受領済みです（お持ちいただく必要はありません）"
    return f"・{'と'.join(missing)}（まだ届いていません。郵送いただいた場合は不要です）"


def slip_document(facts: SlipFacts, person: Mapping[str, Any], hospital: HospitalSettings) -> Document:
    desk = f"{hospital.name} {hospital.desk}"
    return Document(
        title="予約票　セカンドオピニオン外来", title_english="Appointment slip — second-opinion outpatient clinic",
        reference=f"appointment-slip-{facts.appointment_id}", issued_on=facts.issued_on,
        addressee=_addressee(person), numbers=[("受付番号", _case_number(facts, person))],
        stamp="変更後の予約票" if facts.replaces_earlier else None,
        stamp_note="予約日時の変更により、以前お送りした予約票に代わるものです。" if facts.replaces_earlier else None,
        blocks=[
            Lines(["セカンドオピニオン外来のご予約を下記のとおり承りました。"]),
            Heading("ご予約の内容", "Your appointment"),
            Fields([
                ("受付番号\nCase number", _case_number(facts, person)),
                ("患者氏名\nPatient", f"{person['patient_name']} 様"),
                ("日時\nDate and time (Tokyo)", ja_time_range(facts.start, facts.end)),
                ("診療科\nDepartment", department_ja(facts.department)),
                ("担当医\nPhysician", hospital.physician_name(facts.physician_id)),
                ("相談方法\nMode", f"{MODE_NAMES_JA['in_person']}（ご来院いただいてのご相談）"),
            ]),
            Heading("当日の流れ", "On the day"),
            Lines(["1. 予約時刻までに、新患受付で受診手続きをしてください（この予約票をお見せください）。",
                   "2. 手続きの後、会計窓口で相談料をお支払いください。ご相談の前にお支払いいただきます。",
                   "3. お支払いの後、担当診療科の外来でお待ちください。ご相談の後、主治医への報告書をお渡しします。"]),
            Heading("お持ちいただくもの", "What to bring"),
            Lines(["・この予約票",
                   _materials(person.get("received_documents") or ()),
                   f"・相談料 {yen(hospital.in_person_fee_yen)}（税込）　自由診療のため健康保険は使えません"]),
            Heading("予約の変更・キャンセル", "To change or cancel"),
            Lines([f"予約の変更・キャンセルは、お電話で {desk} へご連絡ください。",
                   f"TEL {hospital.desk_phone}　受付時間 {hospital.reception_hours}"]),
            Heading("ご注意", "Please note"),
            Lines(["・セカンドオピニオン外来でご相談の当日に、当院の一般外来の予約はできません。",
                   "・セカンドオピニオン外来では新たな検査や治療は行いません。"], boxed=True),
        ])


def render_slip(facts: SlipFacts, person: Mapping[str, Any], hospital: HospitalSettings) -> bytes:
    return render(slip_document(facts, person, hospital), hospital)
