"""Intake's configuration: the shared settings plus the department catalogue."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator, model_validator

from eventkit import credentials
from eventkit.settings import ServiceSettings, default_dsn
from secondopinion_contracts.codes import Department
from secondopinion_contracts.departments import CATALOGUE

# Departments whose specialists give second opinions (codes used in events). Configurable because the
# roster changes; a request for a department not listed is refused as `no_specialist_available`.
# The published codes (secondopinion_contracts.codes.Department) are the hospital's whole list.
DEFAULT_DEPARTMENTS: tuple[Department, ...] = tuple(Department)


class IntakeSettings(ServiceSettings):
    service: str = "intake"
    database_url: str = Field(default_dsn("intake"), validation_alias="INTAKE_DATABASE_URL")
    http_port: int = Field(8001, validation_alias="INTAKE_HTTP_PORT")
    retention_years: int = Field(5, validation_alias="INTAKE_RETENTION_YEARS", ge=1, le=100)
    departments: tuple[Department, ...] = Field(DEFAULT_DEPARTMENTS, validation_alias="INTAKE_DEPARTMENTS")
    # The key of the blind index cases are searched by (intake.search); empty: the development default, which
    # production refuses. Changing it makes every case submitted before unfindable by name, birth date and phone.
    search_index_key: SecretStr = Field(SecretStr(""), validation_alias="INTAKE_SEARCH_INDEX_KEY")

    def secrets_of_its_own(self) -> dict[str, SecretStr]:
        return {"INTAKE_SEARCH_INDEX_KEY": self.search_index_key}

    @model_validator(mode="after")
    def _development_search_index_key(self) -> IntakeSettings:
        if not self.search_index_key.get_secret_value():
            self.search_index_key = SecretStr(credentials.development_secret(self.service, "search_index_key"))
        return self

    @field_validator("departments", mode="before")
    @classmethod
    def _named(cls, departments: object) -> object:
        """Every department offered has a Japanese and an English name for the desk (the catalogue's).

        Checked before the codes become `Department`s, so the refusal names the catalogue."""
        if isinstance(departments, (list, tuple)):
            unknown = [str(code) for code in departments if str(code) not in CATALOGUE]
            if unknown:
                raise ValueError(f"not in the department catalogue: {', '.join(unknown)} "
                                 f"(known: {', '.join(CATALOGUE)})")
        return departments
