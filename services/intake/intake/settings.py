"""Intake's configuration: the shared settings plus the department catalogue."""

from __future__ import annotations

from pydantic import Field, field_validator

from eventkit.settings import ServiceSettings, default_dsn
from secondopinion_contracts.departments import CATALOGUE

# Departments whose specialists give second opinions (codes used in events). Configurable because the
# roster changes; a request for a department not listed is refused as `no_specialist_available`.
DEFAULT_DEPARTMENTS = (
    "cardiology", "cardiovascular_surgery", "gastroenterology", "gastrointestinal_surgery", "hepatology",
    "nephrology", "hematology", "neurology", "neurosurgery", "oncology", "radiation_oncology", "pediatrics",
    "dermatology", "rheumatology", "infectious_diseases", "otolaryngology", "transplant_surgery",
    "plastic_surgery", "endocrinology", "respiratory_medicine", "urology", "obstetrics_gynecology",
)


class IntakeSettings(ServiceSettings):
    service: str = "intake"
    database_url: str = Field(default_dsn("intake"), validation_alias="INTAKE_DATABASE_URL")
    http_port: int = Field(8001, validation_alias="INTAKE_HTTP_PORT")
    retention_years: int = Field(5, validation_alias="INTAKE_RETENTION_YEARS", ge=1, le=100)
    departments: tuple[str, ...] = Field(DEFAULT_DEPARTMENTS, validation_alias="INTAKE_DEPARTMENTS")

    @field_validator("departments")
    @classmethod
    def _named(cls, departments: tuple[str, ...]) -> tuple[str, ...]:
        """Every department offered has a Japanese and an English name for the desk (the catalogue's)."""
        unknown = [code for code in departments if code not in CATALOGUE]
        if unknown:
            raise ValueError(f"not in the department catalogue: {', '.join(unknown)} "
                             f"(known: {', '.join(CATALOGUE)})")
        return departments
