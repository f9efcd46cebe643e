"""Who a signed-in subject is: the staff directory (subject -> staff id, name, departments, roles).

What a command records as its actor, and the physician a screening or a report names, come from here, never
from a field of the request. The directory is configuration (`STAFF_DIRECTORY_FILE`, a JSON list of
members) where the hospital keeps one; a subject it does not list is described by the identity provider's own
claims (`staff_id`, `name`, `departments`), unless `STAFF_FROM_CLAIMS=false` refuses such subjects. A member's
roles are those their token holds, capped by the directory's entry when there is one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from fastapi import HTTPException
from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from eventkit.events import Actor
from secondopinion_contracts.codes import Department
from secondopinion_contracts.events.intake import DEPARTMENT_PATTERN

# The hospital's departments whose specialists give second opinions, as the events carry them: a token that
# names none in tests works in all of them (eventkit.testing.bearer).
DEFAULT_DEPARTMENTS: tuple[str, ...] = tuple(department.value for department in Department)
# A department code as the events carry it.
_DEPARTMENT = re.compile(DEPARTMENT_PATTERN)


class StaffEntry(BaseModel):
    """One member as the directory file lists them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subject: str = Field(min_length=1, max_length=200)
    staff_id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._@-]+$")
    name: str = Field(min_length=1, max_length=100)
    departments: tuple[str, ...] = ()
    roles: tuple[str, ...] = Field(min_length=1)


@dataclass(frozen=True)
class StaffMember:
    """The signed-in person: recorded as `actor` (staff id and the role they act in)."""

    subject: str
    staff_id: str
    name: str
    departments: frozenset[str]
    roles: tuple[str, ...]
    acting_role: str = field(default="")

    @property
    def actor(self) -> Actor:
        return Actor(id=self.staff_id, role=self.acting_role)

    def require_department(self, department: str | None) -> None:
        """403 unless the case's department is one of the member's (physicians act on their department's cases)."""
        if department is None or department not in self.departments:
            mine = ", ".join(sorted(self.departments)) or "none known"
            raise HTTPException(403, f"this case belongs to another department than yours ({mine})")

    def require_named(self, named: str | None, field_name: str) -> None:
        """A request may still name the physician (older clients), but only as the signed-in one: else 403."""
        if named is not None and named not in (self.staff_id, self.name):
            raise HTTPException(403, f"`{field_name}` must be you ({self.staff_id}): it is taken from your sign-in")


class StaffSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    staff_directory_file: Path | None = Field(None, validation_alias="STAFF_DIRECTORY_FILE")
    staff_from_claims: bool = Field(True, validation_alias="STAFF_FROM_CLAIMS")


class StaffDirectory:
    def __init__(self, settings: StaffSettings | None = None, *, entries: list[StaffEntry] | None = None) -> None:
        self.settings = settings or StaffSettings()
        self._given = entries

    @cached_property
    def entries(self) -> Mapping[str, StaffEntry]:
        listed = self._given
        if listed is None:
            path = self.settings.staff_directory_file
            listed = [StaffEntry.model_validate(item) for item in json.loads(path.read_text())] if path else []
        return {entry.subject: entry for entry in listed}

    def member(self, claims: Mapping[str, Any], token_roles: list[str]) -> StaffMember:
        """The member the verified claims name; 403 for a subject the hospital does not know."""
        subject = str(claims["sub"])
        entry = self.entries.get(subject)
        if entry is not None:
            return StaffMember(subject, entry.staff_id, entry.name, frozenset(entry.departments),
                               tuple(role for role in token_roles if role in entry.roles))
        if not self.settings.staff_from_claims:
            raise HTTPException(403, "you are not in the staff directory")
        departments = claims.get("departments", claims.get("department", []))
        departments = [departments] if isinstance(departments, str) else departments
        if not isinstance(departments, list) or not all(
                isinstance(d, str) and _DEPARTMENT.match(d) for d in departments):
            raise HTTPException(401, "invalid token: `departments` must be a list of department codes")
        staff_id, name = claims.get("staff_id", subject), claims.get("name", subject)
        if not isinstance(staff_id, str) or not staff_id.strip() or not isinstance(name, str) or not name.strip():
            raise HTTPException(401, "invalid token: `staff_id` and `name` must be non-empty strings")
        return StaffMember(subject, staff_id, name, frozenset(departments), tuple(token_roles))
